#!/usr/bin/env bash
# GPU check for the convolutional EP engine, under 8 minutes on one GPU:
#   1. benchmarks/ep_speed.py on the conv cases (conv_mnist, conv_mnist_binary_activations,
#      conv_cifar10) on CUDA, one JSON object;
#   2. a 1-epoch smoke run of configs/laydevant2021/cifar10-binary-weights.toml on an archive
#      in the official CIFAR-10 python format (random images, written here: CIFAR-10 itself
#      need not be on the machine), then `binlearn eval` of the run.
# Everything it writes goes to $OUT (default: a new temporary folder); it prints the folder.
#
#   bash benchmarks/gpu_check.sh            # on a machine with CUDA
#   GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh   # seconds on a CPU: the same steps on
#                                           # tiny sizes (tests/test_gpu_check.py runs it)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="${OUT:-$(mktemp -d -t gpu_check.XXXXXX)}"
mkdir -p "$out"
python="${PYTHON:-python}"
export MPLBACKEND=Agg

if [[ "${GPU_CHECK_TINY:-0}" == "1" ]]; then
    device=cpu
    speed=(--threads 1 --batch-size 2 --warmup 0 --free-steps 3 --nudged-steps 2)
    train_images=24; test_images=8
    smoke=(--set model.channels=[2,3,3,4] --set rule.free_steps=3 --set rule.nudged_steps=2
           --set data.batch_size=8 --set train.threads=1)
else
    device="${DEVICE:-cuda}"
    if [[ "$device" == cuda* ]]; then
        "$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else
                      'gpu_check: no CUDA device (GPU_CHECK_TINY=1 runs the CPU dry run)')"
    fi
    speed=(--batches 3 --warmup 1)
    train_images=5000; test_images=1000
    smoke=()
fi

echo "gpu_check: device=$device, output in $out" >&2
"$python" "$here/ep_speed.py" --device "$device" --cases conv_mnist conv_mnist_binary_activations \
    conv_cifar10 "${speed[@]}" > "$out/ep_speed.json"

"$python" - "$out/data" "$train_images" "$test_images" <<'PY'
import sys
from pathlib import Path

import numpy as np

from binlearn.data import write_cifar_archive

folder, train, test = Path(sys.argv[1]) / "cifar10", int(sys.argv[2]), int(sys.argv[3])
folder.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
images = lambda n: rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)  # noqa: E731
labels = lambda n: rng.integers(0, 10, n)  # noqa: E731
write_cifar_archive(folder / "cifar-10-python.tar.gz", "cifar10", (images(train), labels(train)),
                    (images(test), labels(test)))
PY

BINLEARN_DATA="$out/data" "$python" -m binlearn.cli train \
    "$root/configs/laydevant2021/cifar10-binary-weights.toml" --run-dir "$out/cifar10-smoke" \
    --set data.verify=false --set train.epochs=1 --set train.device="$device" "${smoke[@]}" \
    > "$out/train.log" 2>&1 || { cat "$out/train.log" >&2; exit 1; }
BINLEARN_DATA="$out/data" "$python" -m binlearn.cli eval "$out/cifar10-smoke" > "$out/eval.json"
echo "$out"
