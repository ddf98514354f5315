"""Event-driven vs dense simulation of the converted binary MLP (T time steps, direct input).

Converts a trained binary-weight ReLU MLP (default: the lu2020 784-1024-1024-10 run; its
hidden 1024×1024 layer has ±1 synapses) with the ``binlearn convert`` defaults
(99.7th percentile, reset by subtraction) and simulates ``--images`` MNIST test images for
``--timesteps`` steps without layer delay, twice:

* dense: :func:`binlearn.spiking.simulate` — float32 torch products over all inputs each step;
* event-driven: :func:`binlearn.spiking.event.simulate_events` (``mode="packed"``): each
  step over the whole batch, the ±1 layer's current by the AVX-512 XNOR-popcount GEMM of the
  bit-packed spikes (exact integers), the output layer by the dense op on the 0/1 spikes.

Both compute the first layer's constant current once with the same op. The hidden spikes
must be identical (checked; the run fails otherwise). Reported: images/s and synaptic
events/s (event-driven synaptic operations per image × images / seconds) of each, the
speed-up, the firing rates. Best of ``--repeats``. Prints one JSON object.

    python benchmarks/snn_speed.py [--run RUN_DIR] [--images 2000] [--timesteps 32] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numba
import torch

from binlearn.artifacts.trained import load_trained
from binlearn.spiking import simulate
from binlearn.spiking.convert import convert
from binlearn.spiking.event import simulate_events
from binlearn.spiking.synops import spiking_summary, totals

DEFAULT_RUN = Path(__file__).resolve().parents[1] / "runs" / "lu2020-mnist-mlp-binary-weights"


def best_seconds(function, repeats: int) -> tuple[float, object]:
    result = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN, help="a trained binary-weight MLP run")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--timesteps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    trained = load_trained(args.run, device="cpu", quiet=True)
    config, learner, epoch, data = trained.config, trained.learner, trained.epoch, trained.data
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(args.seed))[:10000]
    network = convert(learner.model, data.x_train[chosen])
    x = data.x_test[:args.images]
    steps = args.timesteps
    dense_s, dense = best_seconds(lambda: simulate(network, x, steps, delay=False, backend="dense"),
                                  args.repeats)
    event_s, events = best_seconds(lambda: simulate_events(network, x, steps, delay=False), args.repeats)
    identical = all(torch.equal(a, b) for a, b in zip(dense.spike_counts, events.spike_counts, strict=True))
    if not identical:
        raise SystemExit("event-driven and dense simulations produced different spikes")
    rows = spiking_summary(network, dense)
    synops = totals(rows)["synaptic_ops"]
    same_predictions = float((dense.predictions()[-1] == events.predictions()[-1]).float().mean())
    print(json.dumps({
        "benchmark": "snn_speed", "run": str(args.run), "epoch": epoch, "images": len(x), "timesteps": steps,
        "delay": False,
        "layers": [{"layer": r["layer"], "binary": r["binary"], "firing_rate": r["firing_rate"],
                    "synaptic_ops": r["synaptic_ops"]} for r in rows],
        "synaptic_ops_per_image": synops,
        "dense_float": {"seconds": dense_s, "images_per_s": len(x) / dense_s,
                        "synaptic_events_per_s": synops * len(x) / dense_s},
        "event_driven": {"seconds": event_s, "images_per_s": len(x) / event_s,
                         "synaptic_events_per_s": synops * len(x) / event_s},
        "speedup": dense_s / event_s, "identical_spikes": identical,
        "same_final_predictions": same_predictions,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "numba_threads": numba.get_num_threads()},
        "versions": {"torch": torch.__version__, "numba": numba.__version__},
        "seed": args.seed, "dataset": config.data.dataset,
    }, indent=2))


if __name__ == "__main__":
    main()
