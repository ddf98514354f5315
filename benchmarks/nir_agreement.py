"""Does an independent NIR reader run an exported run as binlearn does? Prints one JSON object.

The run (an STE run, e.g. a configs/lu2020 MLP, or a local-binary-rule run) is converted as
``binlearn export --format nir`` converts it (reset to zero; STE: 99.7th-percentile balancing on
10,000 training images, seed 0; local binary: its ±1 synapses and integer thresholds, the
data's bits made by the graph's input Threshold) and written as NIR; the file is read back
and run by nirtorch's graph interpreter with snnTorch's neurons mapped by NIR's definitions
(IF(r = 1, θ ≥ 0, v_reset = 0) -> ``snn.Leaky(beta=1, threshold=θ, reset_mechanism="zero",
reset_delay=False)``, NIR's equations where a θ < 0; Affine -> ``nn.Linear``; Flatten of one
sample -> the same over a batch), the image as the input at every step and the output summed
over the steps. binlearn's ``spiking.simulate(..., delay=False)`` runs the same converted
network; the script counts the test images whose predicted class agrees at every step.

    python benchmarks/nir_agreement.py RUN_DIR [--timesteps 32] [--images 10000] [--threads 1]

Needs the test extra (nir, nirtorch, snntorch).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from binlearn.artifacts.nir_export import nir_form
from binlearn.artifacts.trained import load_trained
from binlearn.spiking import simulate
from binlearn.spiking.nir import read_nir, reference_predictions, write_nir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--timesteps", type=int, default=32)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import nir
    import nirtorch
    import snntorch

    trained = load_trained(args.run_dir, device="cpu", quiet=True)
    form = nir_form(trained)  # the network, its writer, and what binlearn's simulator is fed
    network, spikes = form.network, form.inputs
    with tempfile.TemporaryDirectory() as folder:  # through the file, as a reader gets it
        graph = read_nir(write_nir(form.graph(network, output_integrator=False), Path(folder) / "model.nir"))
    x, y = trained.data.x_test[:args.images], trained.data.y_test[:args.images]
    start = time.perf_counter()
    same_every_step = same_last = correct_reader = correct_binlearn = 0
    for first in range(0, len(x), args.batch_size):
        images, labels = x[first:first + args.batch_size], y[first:first + args.batch_size]
        got = reference_predictions(graph, images, args.timesteps)
        expected = simulate(network, spikes(images), args.timesteps, delay=False).predictions()
        same_every_step += int((got == expected).all(dim=0).sum())
        same_last += int((got[-1] == expected[-1]).sum())
        correct_reader += int((got[-1] == labels).sum())
        correct_binlearn += int((expected[-1] == labels).sum())
    print(json.dumps({
        "run_dir": args.run_dir, "epoch": trained.epoch,
        "conversion": form.conversion,
        "timesteps": args.timesteps, "images": len(x),
        "same_class_every_step": same_every_step, "same_class_at_last_step": same_last,
        "accuracy_binlearn": correct_binlearn / len(x), "accuracy_reader": correct_reader / len(x),
        "seconds": round(time.perf_counter() - start, 2), "threads": args.threads,
        "versions": {"torch": torch.__version__, "nir": nir.version,
                     "nirtorch": getattr(nirtorch, "__version__", None), "snntorch": snntorch.__version__,
                     "python": platform.python_version()},
        "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
