"""Synchronous vs even/odd relaxation: steps and seconds to reach the same fixed point.

For each network, starting from the zero state with real MNIST test images clamped (or
random MNIST-like images when no dataset is found), relax with each schedule until
max |s_{t+1} − s_t| < tolerance, and report the steps, the seconds, and the largest
difference between the two fixed points. Networks: the float FC 784-4096-10 and a deeper
784-512-512-512-10 at initialisation, plus any trained float run given with ``--run``.

    python benchmarks/relaxation_schedules.py [--run RUN_DIR ...] [--batch 256] [--tolerance 1e-4]

Prints one JSON object ``{"cases": [{"network", "synchronous": {"steps", "seconds"},
"even_odd": {...}, "step_ratio", "max_state_difference"}, ...]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ep_speed import load_inputs  # noqa: E402

from binlearn.energy import EVEN_ODD, SYNCHRONOUS, EnergyNet, fully_connected, relax_until  # noqa: E402


def _trained_net(run_dir: str) -> EnergyNet:
    from binlearn.experiment.registry import build_learner
    from binlearn.experiment.runner import load_run

    config, checkpoint = load_run(Path(run_dir))
    if getattr(config.model, "neuron", None) != "hard_sigmoid":
        raise SystemExit(f"{run_dir}: needs a run of an energy model with hard-sigmoid neurons")
    learner = build_learner(config, (1, 28, 28), 10, torch.device("cpu"))
    learner.load_state_dict(checkpoint["learner"])
    return learner.model


def compare(name: str, net: EnergyNet, x: torch.Tensor, tolerance: float, max_steps: int) -> dict:
    case: dict = {"network": name}
    states = {}
    for schedule in (SYNCHRONOUS, EVEN_ODD):
        start = time.perf_counter()
        with torch.no_grad():
            state, steps = relax_until(net, x, net.initial_state(x.shape[0]), max_steps, tolerance,
                                       schedule=schedule)
        case[schedule] = {"steps": steps, "seconds": round(time.perf_counter() - start, 3),
                          "converged": steps < max_steps}
        states[schedule] = state
    case["step_ratio"] = round(case[SYNCHRONOUS]["steps"] / max(case[EVEN_ODD]["steps"], 1), 2)
    case["max_state_difference"] = max(
        float((a - b).abs().max())
        for a, b in zip(states[SYNCHRONOUS].layers, states[EVEN_ODD].layers, strict=True))
    return case


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], help="a trained float EP run directory")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    x, _, source = load_inputs(args.batch, args.data_dir, args.seed)
    torch.manual_seed(args.seed)
    networks = [("fc 784-4096-10 (initial)", fully_connected((1, 28, 28), [4096], 10)),
                ("fc 784-512-512-512-10 (initial)", fully_connected((1, 28, 28), [512, 512, 512], 10))]
    networks += [(f"trained: {run}", _trained_net(run)) for run in args.run]
    result = {
        "benchmark": "relaxation_schedules",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "torch": torch.__version__, "threads": torch.get_num_threads(), "seed": args.seed,
        "inputs": source, "batch": args.batch, "tolerance": args.tolerance,
        "cases": [compare(name, net, x, args.tolerance, args.max_steps) for name, net in networks],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
