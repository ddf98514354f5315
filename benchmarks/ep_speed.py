"""Training speed of the Equilibrium Propagation engine on CPU (or any torch device).

Measures training samples per second (full EP training steps: free phase, nudged
phase, gradient estimate, Bop flips and bias updates) for the published configurations

    fc_binary_weights              FC 784-4096-10, binary weights, T = 50, K = 10, batch 64
    fc_binary_activations          FC 784-8192-100, binary weights + activations, T = 20, K = 10
    conv_mnist                     conv 1-32-64 + fc 10, binary weights, T = 150, K = 10
    conv_mnist_binary_activations  conv 1-256-512 + fc 700, binary weights + activations,
                                   T = 100, K = 50
    conv_cifar10                   conv 3-64-128-256-256 + fc 10, binary weights, T = 150, K = 10

and the other arms of the paper's paired claims (docs/claims.md):

    fc_float                       FC 784-4096-10, float weights, T = 50, K = 10
    fc2_float                      FC 784-4096-4096-10, float weights, T = 250, K = 10
    fc2_binary_weights             FC 784-4096-4096-10, binary weights, T = 250, K = 10
    fc2_binary_activations         FC 784-8192-8192-100, binary weights + activations, T = 30, K = 10
    conv_mnist_float               conv 1-32-64 + fc 10, float weights, T = 150, K = 10

and the integer-only EP step (:mod:`binlearn.rules.integer_ep`) beside the float Bop step on the
same net and the same {0, 1} inputs (pixels thresholded at 0.5):

    fc_binary_activations_binary_input  FC 784-8192-100, binary weights + activations + inputs,
                                        T = 20, K = 10, float32 engine, Bop
    fc_binary_activations_integer       the same net, rule.arithmetic = "integer": fixed-point
                                        accumulators, int32 drives, 8-bit counters, integer biases

and prints one JSON object. Seconds per epoch are extrapolated to 60,000 samples from a
timed number of batches (after warm-up batches; the large convnets time one batch with no
warm-up, see ``CASES``; ``--batch-size`` overrides the configs' batch size, and the JSON
gives the size used). MNIST inputs are real MNIST training images when ``BINLEARN_DATA`` (or
``--data-dir``) holds them, otherwise random MNIST-like images (≈19 % non-zero pixels in a
centred blob, values in (0, 1]); CIFAR-10 inputs are random normalised images (standard
normal, the statistics of the normalised data); the JSON says which.

    python benchmarks/ep_speed.py [--threads 1] [--batches 30] [--cases fc_binary_weights]
                                  [--gemm-only] [--free-tolerance 1e-5]
                                  [--free-steps T --nudged-steps K]

Products of sparse binary activations (case b) are row adds of ±1 rows (the same integers
as the GEMM), and convolutions between binary layers are event-driven (only the units that
changed; the same numbers); ``--gemm-only`` times the dense path instead.
``timed_cpu_seconds`` (``time.process_time``, every thread of the process) beside the wall
clock: on a shared machine whose load exceeds its cores the wall clock also counts the time
other processes held the cores; with ``--threads 1`` the CPU time is the single-thread cost.
``--free-tolerance`` turns on the optional convergence test of the free phase (not the
published setting; the JSON gives the mean free steps run); ``--free-steps`` and
``--nudged-steps`` override T and K (for quick checks, e.g. ``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from binlearn.experiment import load_config
from binlearn.experiment.learner import LocalReducer
from binlearn.experiment.registry import build_learner

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "laydevant2021"
CASES = {  # name: (config, timed batches, warm-up batches at most)
    "fc_binary_weights": ("fc-binary-weights.toml", 100, None),
    "fc_binary_activations": ("fc-binary-weights-activations.toml", 10, None),
    "conv_mnist": ("conv-mnist-binary-weights.toml", 2, None),
    "conv_mnist_binary_activations": ("conv-mnist-binary-weights-activations.toml", 1, 0),
    "conv_cifar10": ("cifar10-binary-weights.toml", 1, 0),
    "fc_float": ("fc-float.toml", 100, None),
    "fc2_float": ("fc2-float.toml", 4, None),
    "fc2_binary_weights": ("fc2-binary-weights.toml", 4, None),
    "fc2_binary_activations": ("fc2-binary-weights-activations.toml", 4, None),
    "conv_mnist_float": ("conv-mnist-float.toml", 2, None),
    "fc_binary_activations_binary_input": ("fc-binary-weights-activations-binary-input.toml", 10, None),
    "fc_binary_activations_integer": ("fc-binary-weights-activations-binary-input-integer.toml", 10, None),
}
BINARY_INPUT = ("fc_binary_activations_binary_input", "fc_binary_activations_integer")
"""Cases whose config reads binarised pixels (data.encoding = "binarize"): their inputs are the
images thresholded at 0.5, {0, 1}."""
EPOCH_SAMPLES = 60_000


def mnist_like(count: int, generator: torch.Generator) -> torch.Tensor:
    """Random images with MNIST's gross statistics: a centred blob of strokes, ~19 % of
    pixels non-zero, intensities in (0, 1] (mostly near 1)."""
    rows = torch.arange(28).float().sub(13.5).abs().view(1, 28, 1)
    columns = torch.arange(28).float().sub(13.5).abs().view(1, 1, 28)
    inside = (rows < 10) & (columns < 8)
    strokes = torch.rand(count, 28, 28, generator=generator) < 0.38
    values = torch.rand(count, 28, 28, generator=generator).pow(0.3)
    return (values * (strokes & inside)).unsqueeze(1)


def load_inputs(count: int, data_dir: str | None, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    generator = torch.Generator().manual_seed(seed)
    root = data_dir or os.environ.get("BINLEARN_DATA")
    if root and (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        from binlearn.data import load_dataset

        data = load_dataset("mnist", data_dir=root, train_size=count, quiet=True)
        return data.x_train, data.y_train, "MNIST training images (official files)"
    labels = torch.randint(0, 10, (count,), generator=generator)
    return mnist_like(count, generator), labels, "random MNIST-like images"


def cifar_like(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (3, 32, 32) images with the statistics of normalised CIFAR-10, random labels."""
    images = torch.randn(count, 3, 32, 32, generator=generator)
    return images, torch.randint(0, 10, (count,), generator=generator)


def time_case(config_file: str, batches: int, warmup: int, x: torch.Tensor, y: torch.Tensor,
              seed: int, device: torch.device, sparse_products: bool = True,
              batch_size: int | None = None, free_tolerance: float | None = None,
              steps: tuple[int | None, int | None] = (None, None),
              settings: list[str] | None = None) -> dict:
    overrides = [f"rule.free_tolerance={free_tolerance}"] if free_tolerance is not None else []
    overrides += settings or []
    overrides += [f"rule.{key}={value}" for key, value in zip(("free_steps", "nudged_steps"), steps,
                                                              strict=True) if value is not None]
    config = load_config(CONFIGS / config_file, overrides)
    if batch_size is not None:
        config.data.batch_size = batch_size
    torch.manual_seed(seed)
    learner = build_learner(config, tuple(x.shape[1:]), 10, device)
    learner.rule.sparse_products = sparse_products
    free_steps_run: list[int] = []
    estimate = learner.rule.estimate

    def counted_estimate(*args, **kwargs):
        result = estimate(*args, **kwargs)
        free_steps_run.append(result.free_steps)
        return result

    learner.rule.estimate = counted_estimate
    batch = config.data.batch_size
    reducer = LocalReducer()
    x, y = x.to(device), y.to(device)

    def step(index: int) -> None:
        start = (index * batch) % (len(x) - batch + 1)
        learner.train_step(x[start:start + batch], y[start:start + batch], reducer)

    for index in range(warmup):
        step(index)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    for index in range(batches):
        step(warmup + index)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    samples_per_second = batches * batch / seconds
    rule = config.rule
    timed_free = free_steps_run[warmup:]
    return {
        "config": f"configs/laydevant2021/{config_file}", "input_shape": list(x.shape[1:]),
        "architecture": (f"{config.model.architecture} hidden={config.model.hidden}"
                         if config.model.architecture == "fc"
                         else f"conv channels={config.model.channels}"),
        "free_steps": rule.free_steps, "nudged_steps": rule.nudged_steps,
        "free_tolerance": free_tolerance, "relaxation": rule.relaxation,
        "overrides": settings or [],
        "free_steps_run_mean": round(sum(timed_free) / len(timed_free), 2) if timed_free else rule.free_steps,
        "arithmetic": getattr(rule, "arithmetic", "float"),
        "optimizer": getattr(config.optimizer, "name", None),
        "batch_size": batch, "timed_batches": batches, "warmup_batches": warmup,
        "timed_seconds": round(seconds, 4),
        "timed_cpu_seconds": round(cpu_seconds, 4),
        "samples_per_cpu_second": round(batches * batch / cpu_seconds, 1),
        "samples_per_second": round(samples_per_second, 1 if samples_per_second >= 10 else 3),
        "seconds_per_epoch": round(EPOCH_SAMPLES / samples_per_second, 1),
        "seconds_per_epoch_note": f"extrapolated to {EPOCH_SAMPLES} samples from the timed batches",
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's default)")
    parser.add_argument("--batches", type=float, default=1.0,
                        help="multiply every case's number of timed batches")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="override every case's batch size (default: the config's)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--free-tolerance", type=float, default=None,
                        help="stop each free phase once max |Δs| < this (off: the published T)")
    parser.add_argument("--free-steps", type=int, default=None, help="override T")
    parser.add_argument("--nudged-steps", type=int, default=None, help="override K")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every case, e.g. rule.relaxation=even_odd")
    parser.add_argument("--gemm-only", action="store_true",
                        help="no row adds for sparse binary activations (the dense GEMM path, "
                             "bit-identical; for comparison)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x, y, source = load_inputs(2048, args.data_dir, args.seed)
    cifar_x, cifar_y = cifar_like(256, torch.Generator().manual_seed(args.seed))
    result: dict = {
        "benchmark": "ep_speed",
        "machine": {"platform": platform.platform(), "processor": platform.processor() or
                    platform.machine(), "cpu_count": os.cpu_count(),
                    "load_average_1min": round(os.getloadavg()[0], 2)},
        "torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
        "seed": args.seed, "inputs": source, "cifar10_inputs": "random normalised images (standard normal)",
        "sparse_products": not args.gemm_only,
    }
    for name in args.cases:
        config_file, batches, most_warmup = CASES[name]
        warmup = args.warmup if most_warmup is None else min(args.warmup, most_warmup)
        inputs = (cifar_x, cifar_y) if name == "conv_cifar10" else (x, y)
        if name in BINARY_INPUT:
            inputs = ((x > 0.5).float(), y)
        result[name] = time_case(config_file, max(1, round(batches * args.batches)), warmup,
                                 *inputs, args.seed, device, sparse_products=not args.gemm_only,
                                 batch_size=args.batch_size, free_tolerance=args.free_tolerance,
                                 steps=(args.free_steps, args.nudged_steps), settings=args.set)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
