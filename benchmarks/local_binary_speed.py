"""Training speed of the binary-native local rule: the integer/bit implementation vs the same
rule written with dense float torch tensors.

Both train the network of ``configs/colombo2024/mnist-1035-1035.toml`` (784-1035-1035, 10
classes, G = 115, rob = 0.25·width, batch 100) from the same initial state:

    integer  LocalLearner.train_step: XNOR-popcount forward on packed bits, integer
             selection, int16 hidden weights, reinforcement drawn as 64-lane bit masks
    float    rules.local_binary.local_binary_step_dense: float32 matmuls, argmin over
             groups, torch.rand reinforcement masks

Reinforcement runs at its largest probability, p_r(train accuracy 0) of the first epoch.
Before timing, one step of each from the same state, batch and reinforcement masks is
compared: ``identical_step`` says whether the hidden weights agree exactly. Each figure is
samples/s over ``--batches`` timed batches after ``--warmup`` batches, best of ``--rounds``.
The integer kernels run on one thread (by design, see rules/local_binary.py). The float twin
is timed with each of ``--float-threads`` torch threads (default 1 and the CPU count) and
its best figure is the one compared: on a shared, loaded machine a multi-threaded torch op
can wait for a busy core and run many times slower than on one thread, and the baseline
should not lose by that.
Inputs are real MNIST training images (binarised at 0, as the config) when ``BINLEARN_DATA``
(or ``--data-dir``) holds them, otherwise random MNIST-like binary images; the JSON says
which. Prints one JSON object.

    python benchmarks/local_binary_speed.py [--batches 40] [--rounds 3] [--float-threads 1 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import numba
import numpy as np
import torch

from binlearn.binary.packing import from_numpy_words, unpack_bits
from binlearn.experiment import load_config
from binlearn.experiment.learner import LocalReducer
from binlearn.experiment.registry import build_learner
from binlearn.rules.local_binary import (
    input_signs,
    local_binary_step,
    local_binary_step_dense,
    reinforcement_mask_words,
)

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "colombo2024" / "mnist-1035-1035.toml"


def mnist_like(count: int, generator: torch.Generator) -> torch.Tensor:
    """Random binary images with MNIST's gross statistics: ~19 % of pixels on, all inside a
    centred 20×16 box. (count, 1, 28, 28) float in {0, 1}."""
    rows = torch.arange(28).float().sub(13.5).abs().view(1, 28, 1)
    columns = torch.arange(28).float().sub(13.5).abs().view(1, 1, 28)
    inside = (rows < 10) & (columns < 8)
    strokes = torch.rand(count, 28, 28, generator=generator) < 0.38
    return (strokes & inside).float().unsqueeze(1)


def load_inputs(count: int, data_dir: str | None, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    generator = torch.Generator().manual_seed(seed)
    root = data_dir or os.environ.get("BINLEARN_DATA")
    if root and (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        from binlearn.data import load_dataset

        config = load_config(CONFIG)
        data = load_dataset("mnist", data_dir=root, train_size=count, encoding="binarize",
                            threshold=config.data.threshold, quiet=True)
        return data.x_train, data.y_train, "MNIST training images (official files), binarised"
    labels = torch.randint(0, 10, (count,), generator=generator)
    return mnist_like(count, generator), labels, "random MNIST-like binary images"


def best_seconds(runs: dict, batches: int, warmup: int, rounds: int) -> dict:
    """{name: least seconds for ``batches`` steps} over ``rounds`` rounds; ``runs`` maps a name
    to (step, torch threads), ``step(index)`` running one batch. The runs take turns within
    each round, so that a change in the machine's load hits them alike."""
    for step, threads in runs.values():
        torch.set_num_threads(threads)
        for index in range(warmup):
            step(index)
    best = dict.fromkeys(runs, float("inf"))
    for round_index in range(rounds):
        for name, (step, threads) in runs.items():
            torch.set_num_threads(threads)
            start = time.perf_counter()
            for index in range(batches):
                step(warmup + round_index * batches + index)
            best[name] = min(best[name], time.perf_counter() - start)
    torch.set_num_threads(1)
    return best


def same_step(learner, x: torch.Tensor, y: torch.Tensor, seed: int) -> bool:
    """One integer step and one float step from the same state, batch and reinforcement masks:
    are the new hidden weights identical?"""
    layers = copy.deepcopy(learner.model)
    params = learner.params
    hidden = [layer.hidden.float() for layer in layers]
    classifiers = [layer.classifier.float() for layer in layers]
    masks, limits = [], []
    for index, layer in enumerate(layers):
        words = reinforcement_mask_words(seed, index, layer.out_features, layer.in_features,
                                         layer.reinforcement_numerator, params.probability_bits)
        masks.append(unpack_bits(from_numpy_words(words), layer.in_features))
        high = torch.iinfo(layer.hidden.dtype).max
        limits.append((-high, high))
    signs = input_signs(x)
    result = local_binary_step(layers, signs, y, params, seed)
    dense, mistakes, correct = local_binary_step_dense(hidden, classifiers, signs.float(), y, params,
                                                       [0.0] * len(layers), limits, masks)
    return (all(torch.equal(layer.hidden.float(), h) for layer, h in zip(layers, dense, strict=True))
            and (result.mistakes, result.correct) == (mistakes, correct))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="timed batches per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--float-threads", type=int, nargs="+", default=None,
                        help="torch threads to time the float twin with (default: 1 and the CPU count)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    float_threads = sorted(set(args.float_threads or [1, os.cpu_count() or 1]))
    torch.set_num_threads(1)
    config = load_config(CONFIG)
    batch = config.data.batch_size
    count = batch * (args.warmup + args.rounds * args.batches)
    x, y, source = load_inputs(count, args.data_dir, args.seed)
    torch.manual_seed(args.seed)
    learner = build_learner(config, tuple(x.shape[1:]), 10, torch.device("cpu"))
    identical = same_step(learner, x[:batch], y[:batch], args.seed)

    # float twin, from the same initial state and at the same reinforcement probability
    hidden = [layer.hidden.float() for layer in learner.model]
    classifiers = [layer.classifier.float() for layer in learner.model]
    probabilities = [layer.reinforcement_numerator / 2**learner.params.probability_bits
                     for layer in learner.model]
    limits = [(-torch.iinfo(layer.hidden.dtype).max, torch.iinfo(layer.hidden.dtype).max)
              for layer in learner.model]
    generator = torch.Generator().manual_seed(args.seed)
    flat = x.reshape(len(x), -1)

    def float_step(index: int) -> None:
        nonlocal hidden
        rows = slice((index * batch) % count, (index * batch) % count + batch)
        hidden, _, _ = local_binary_step_dense(hidden, classifiers, flat[rows] * 2 - 1, y[rows],
                                               learner.params, probabilities, limits,
                                               generator=generator)

    reducer = LocalReducer()

    def integer_step(index: int) -> None:
        rows = slice((index * batch) % count, (index * batch) % count + batch)
        learner.train_step(x[rows], y[rows], reducer)

    runs = {"integer": (integer_step, 1)} | {threads: (float_step, threads) for threads in float_threads}
    seconds = best_seconds(runs, args.batches, args.warmup, args.rounds)
    integer_seconds = seconds.pop("integer")
    best_threads = min(seconds, key=seconds.get)
    float_seconds = seconds[best_threads]
    integer = args.batches * batch / integer_seconds
    floating = args.batches * batch / float_seconds
    result = {
        "benchmark": "local_binary_speed",
        "integer_samples_per_second": round(integer, 1),
        "float_samples_per_second": round(floating, 1),
        "speedup": round(integer / floating, 2),
        "identical_step": identical,
        "config": str(CONFIG.relative_to(CONFIG.parents[2])),
        "layers": [784, *config.model.hidden], "group_size": config.rule.group_size,
        "batch_size": batch, "timed_batches": args.batches, "warmup_batches": args.warmup,
        "rounds": args.rounds, "integer_seconds": round(integer_seconds, 4),
        "float_seconds": round(float_seconds, 4), "hidden_dtype": str(learner.model[0].hidden.dtype),
        "reinforcement_probability": [round(p, 6) for p in probabilities],
        "inputs": source, "seed": args.seed,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)},
        "torch": torch.__version__, "numba": numba.__version__, "numpy": np.__version__,
        "python": platform.python_version(),
        "float_samples_per_second_by_threads": {str(t): round(args.batches * batch / v, 1)
                                                for t, v in seconds.items()},
        "threads": {"integer": 1, "float": best_threads, "numba_pool": numba.get_num_threads()},
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
