"""How many free steps binary-activation nets need to settle, and what the published T leaves.

For each trained binary-activation run given (``model.neuron = "binary"``) and each schedule,
relax batches of MNIST test images from the initial state with the stop tests of
``relax_until`` (``stop="no_flips"``, ``stop="settled"``, at most ``--max-steps``) and with
the run's own T (``rule.free_steps``), and report per schedule:

- ``settled_steps`` / ``no_flips_steps``: mean, min and max steps to the stop over the batches
  (``settled_within_T``: fraction of batches whose stop fires within T steps);
- ``units_differing_T_vs_settled``: fraction of activations (every layer, unit and sample)
  that differ between the T-step state and the settled state (0: T is past the fixed point of
  the binary state); ``output_units_differing``: the same for the output layer only;
- ``predictions_differing_*``: fraction of samples whose predicted class differs from the
  T-step prediction (the accumulators break ties between equal group activities, so a settled
  state can predict differently from the T-step one even with equal activations).

    python benchmarks/binary_stop.py RUN_DIR [RUN_DIR ...] [--batches 10] [--batch 64] [--max-steps 200]

Prints one JSON object ``{"machine", "versions", "cases": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch

from binlearn.energy import EVEN_ODD, SYNCHRONOUS, EnergyNet, relax_until


def _trained(run_dir: str) -> tuple[EnergyNet, int]:
    from binlearn.experiment.registry import build_learner
    from binlearn.experiment.runner import load_run

    config, checkpoint = load_run(Path(run_dir))
    if getattr(config.model, "neuron", None) != "binary":
        raise SystemExit(f"{run_dir}: needs a run of an energy model with binary neurons")
    learner = build_learner(config, (1, 28, 28), 10, torch.device("cpu"))
    learner.load_state_dict(checkpoint["learner"])
    return learner.model, int(config.rule.free_steps)


def _summary(values: list[int]) -> dict:
    return {"mean": round(statistics.fmean(values), 2), "min": min(values), "max": max(values)}


def measure(net: EnergyNet, free_steps: int, batches: list[torch.Tensor], max_steps: int,
            schedule: str) -> dict:
    settled_steps, flips_steps, differing, output_differing, units, outputs = [], [], 0, 0, 0, 0
    predictions = {"settled": 0, "no_flips": 0}
    samples = 0
    with torch.no_grad():
        for x in batches:
            start = net.initial_state(x.shape[0])
            at_t, _ = relax_until(net, x, start, free_steps, schedule=schedule)
            settled, steps = relax_until(net, x, start, max_steps, schedule=schedule, stop="settled")
            flips, early = relax_until(net, x, start, max_steps, schedule=schedule, stop="no_flips")
            settled_steps.append(steps)
            flips_steps.append(early)
            for index, (a, b) in enumerate(zip(net.activations(at_t), net.activations(settled), strict=True)):
                count = int((a != b).sum())
                differing += count
                units += a.numel()
                if index == net.num_layers - 1:
                    output_differing, outputs = output_differing + count, outputs + a.numel()
            reference = net.predict(at_t)
            predictions["settled"] += int((net.predict(settled) != reference).sum())
            predictions["no_flips"] += int((net.predict(flips) != reference).sum())
            samples += x.shape[0]
    return {"settled_steps": _summary(settled_steps), "no_flips_steps": _summary(flips_steps),
            "settled_within_T": round(sum(s <= free_steps for s in settled_steps) / len(settled_steps), 3),
            "units_differing_T_vs_settled": differing / units,
            "output_units_differing": output_differing / outputs,
            "predictions_differing_settled_vs_T": predictions["settled"] / samples,
            "predictions_differing_no_flips_vs_T": predictions["no_flips"] / samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=os.environ.get("BINLEARN_DATA"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from binlearn.data import load_dataset

    data = load_dataset("mnist", data_dir=args.data_dir, train_size=1000, quiet=True)
    x = data.x_test[: args.batches * args.batch]
    batches = list(x.split(args.batch))
    cases = []
    for run in args.runs:
        net, free_steps = _trained(run)
        case: dict = {"run": run, "free_steps_T": free_steps, "images": f"MNIST test, first {x.shape[0]}"}
        for schedule in (SYNCHRONOUS, EVEN_ODD):
            case[schedule] = measure(net, free_steps, batches, args.max_steps, schedule)
        cases.append(case)
    print(json.dumps({"machine": {"platform": platform.platform(), "processor": platform.processor()
                                  or platform.machine(), "cpu_count": os.cpu_count()},
                      "versions": {"torch": torch.__version__}, "threads": args.threads,
                      "batch": args.batch, "max_steps": args.max_steps, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
