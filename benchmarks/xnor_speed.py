"""Packed XNOR-popcount dense layer vs fp32 ``torch.matmul`` of the same shape.

For each (B, K, N): fp32_ms = time of ``torch.matmul(x, w)`` with x (B, K), w (K, N) float32;
packed_ms = time of the numba kernel out = K − 2·popcount(x XOR w) on pre-packed operands
(inputs (B, ceil(K/64)) and weights (N, ceil(K/64)) uint64 — the packed layer consumes the
packed activations of the previous binary layer); pack_input_ms = time to pack a float
±1 input batch with the numba ``pack_sign_matrix`` (reported apart, not part of packed_ms). Each figure is
the best of ``--repeats`` calls after a warm-up call. Prints one JSON object.

    python benchmarks/xnor_speed.py [--repeats 10] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numba
import numpy as np
import torch

from binlearn.binary.kernels.numba_cpu import (
    PARALLEL_MIN_WORD_OPS,
    pack_sign_matrix,
    xnor_popcount_dense,
)
from binlearn.binary.kernels.reference import dense_sign_matmul
from binlearn.binary.packing import pack_signs, to_numpy_words, words_for

CASES = [(256, 784, 4096), (256, 4096, 4096), (1, 4096, 4096), (64, 4096, 1000)]


def best_ms(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    cases = []
    for batch, features, outputs in CASES:
        x = torch.randint(0, 2, (batch, features), generator=generator).float() * 2 - 1
        w = torch.randint(0, 2, (outputs, features), generator=generator).float() * 2 - 1
        w_t = w.T.contiguous()
        x_words, w_words = to_numpy_words(pack_signs(x)), to_numpy_words(pack_signs(w))
        out = np.empty((batch, outputs), np.int32)
        # correctness check before timing (a fast wrong kernel is worth nothing)
        xnor_popcount_dense(x_words, w_words, features, out=out)
        exact = np.array_equal(out[:8], dense_sign_matmul(x[:8], w).numpy())
        fp32_ms = best_ms(lambda x=x, w_t=w_t: torch.matmul(x, w_t), args.repeats)
        packed_ms = best_ms(lambda xw=x_words, ww=w_words, f=features, o=out:
                            xnor_popcount_dense(xw, ww, f, out=o), args.repeats)
        x_numpy = x.numpy()
        pack_ms = best_ms(lambda v=x_numpy: pack_sign_matrix(v), args.repeats)
        cases.append({
            "B": batch, "K": features, "N": outputs, "fp32_ms": round(fp32_ms, 4),
            "packed_ms": round(packed_ms, 4), "speedup": round(fp32_ms / packed_ms, 2),
            "pack_input_ms": round(pack_ms, 4), "threaded": batch * outputs * words_for(features)
            >= PARALLEL_MIN_WORD_OPS, "exact": bool(exact),
        })
    print(json.dumps({
        "benchmark": "xnor_speed", "cases": cases, "repeats": args.repeats, "seed": args.seed,
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
                    "load_average": [round(v, 2) for v in os.getloadavg()]},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__, "numba": numba.__version__},
    }, indent=1))


if __name__ == "__main__":
    main()
