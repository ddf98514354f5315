"""benchmarks/gpu_check.sh in its tiny CPU mode: the same steps as on a GPU (ep_speed's conv
cases, a 1-epoch run on a CIFAR-10-format archive, its evaluation), on tiny sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def test_gpu_check_script_runs_in_its_tiny_cpu_mode(tmp_path):
    env = {**os.environ, "GPU_CHECK_TINY": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path)
    speed = json.loads((tmp_path / "ep_speed.json").read_text())
    for case in ("conv_mnist", "conv_mnist_binary_activations", "conv_cifar10"):
        assert speed[case]["samples_per_second"] > 0 and speed[case]["free_steps"] == 3
    evaluation = json.loads((tmp_path / "eval.json").read_text())
    assert 0.0 <= evaluation["accuracy"] <= 1.0
    assert (tmp_path / "cifar10-smoke" / "metrics.jsonl").is_file()
