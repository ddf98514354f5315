"""CPU seconds (process time, one thread: robust to the shared machine's load, unlike wall
clock) of training steps and evaluation for the binary stop arms, from a trained A/B run.

    python results/runs/ab/speed_binary_stop.py [RUN_DIR] [--batches 30] [--repeats 3] [--gemm-only]

For each repeat and arm (interleaved), the run's weights are loaded afresh, the rule's
free_stop (and relaxation) set, ``--batches`` training steps of 64 MNIST training images timed,
then the free phase of 1024 MNIST test images (``predict``). Prints one JSON object with the
median CPU seconds per arm and the speed-ups against the published T of the same schedule.
"""
import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from binlearn.data import load_dataset
from binlearn.experiment.learner import LocalReducer
from binlearn.experiment.registry import build_learner
from binlearn.experiment.runner import load_run

HERE = Path(__file__).resolve().parent
ARMS = [(schedule, stop) for schedule in ("synchronous", "even_odd")
        for stop in (None, "no_flips", "settled", "settled_extrapolated")]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run", nargs="?", default=str(HERE / "fc-bwa-4k-sync-T20-s0"))
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gemm-only", action="store_true",
                        help="training products as GEMMs (no row adds or event updates)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config, checkpoint = load_run(Path(args.run))
    data = load_dataset("mnist", data_dir=os.environ.get("BINLEARN_DATA"), train_size=4000, quiet=True)
    x_train, y_train = data.x_train, data.y_train
    x_test = data.x_test[:1024]
    times = {arm: {"train": [], "eval": [], "free_steps": []} for arm in ARMS}
    for _ in range(args.repeats):
        for arm in ARMS:
            schedule, stop = arm
            torch.manual_seed(0)
            learner = build_learner(config, (1, 28, 28), 10, torch.device("cpu"))
            learner.load_state_dict(copy.deepcopy(checkpoint["learner"]))
            source = learner.source
            source.rule.free_stop, source.rule.schedule = stop, schedule
            source.cfg.relaxation = schedule
            source.rule.sparse_products = not args.gemm_only
            reducer = LocalReducer()
            start = time.process_time()
            for index in range(args.batches):
                sl = slice(64 * index, 64 * (index + 1))
                learner.train_step(x_train[sl], y_train[sl], reducer)
            times[arm]["train"].append(time.process_time() - start)
            times[arm]["free_steps"].append(source._free_steps_run / max(source._free_phases, 1))
            start = time.process_time()
            with torch.no_grad():
                for chunk in x_test.split(256):
                    learner.predict(chunk)
            times[arm]["eval"].append(time.process_time() - start)
    result = {}
    for arm in ARMS:
        base = times[(arm[0], None)]
        train, evaluation = statistics.median(times[arm]["train"]), statistics.median(times[arm]["eval"])
        result[f"{arm[0]}/{arm[1] or 'T=' + str(config.rule.free_steps)}"] = {
            "train_cpu_s": round(train, 3), "train_samples_per_cpu_s": round(64 * args.batches / train, 1),
            "eval_cpu_s_1024": round(evaluation, 3),
            "train_speedup": round(statistics.median(base["train"]) / train, 2),
            "eval_speedup": round(statistics.median(base["eval"]) / evaluation, 2),
            "free_steps_mean": round(statistics.fmean(times[arm]["free_steps"]), 2)}
    print(json.dumps({"run": args.run, "machine": {"platform": platform.platform(),
                                                   "cpu_count": os.cpu_count(),
                                                   "load_average_1min": os.getloadavg()[0]},
                      "torch": torch.__version__, "threads": 1, "gemm_only": args.gemm_only,
                      "batches": args.batches,
                      "repeats": args.repeats, "arms": result}, indent=1))


if __name__ == "__main__":
    main()
