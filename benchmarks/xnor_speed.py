"""Packed XNOR-popcount dense layer vs fp32 ``torch.matmul`` of the same shape, and the
share of this CPU's popcount ceiling each case reaches.

For each (B, K, N): fp32_ms = time of ``torch.matmul(x, w)`` with x (B, K), w (K, N) float32;
packed_ms = time of the numba kernel out = K − 2·popcount(x XOR w) on pre-packed operands
(inputs (B, ceil(K/64)) and weights (N, ceil(K/64)) uint64 — the packed layer consumes the
packed activations of the previous binary layer); pack_input_ms = time to pack a float
±1 input batch with the numba ``pack_sign_matrix`` (reported apart, not part of packed_ms).

Binary operations are counted like FLOPs, two per ±1 multiply-accumulate:
binary_gops = 2·B·K·N / packed time. The ceiling is the kernel's own register block
(4 input rows × 32 transposed weight rows, the same XOR-popcount-accumulate loop) run over
rows that stay in L1 (4 + 32 rows of as many words, a multiple of 16, as fill at most 3/4 of
this CPU's L1d, read from sysfs: 128 words, 36 KiB, on a 48 KiB L1d; 80 words on 32 KiB),
``ceiling_repeats`` times inside one compiled
call (timed at least 100 times): what the popcount loop does with no cache miss and no loop
overhead outside the block; share_of_ceiling = binary_gops / ceiling_gops × (threads used by the case).

Every figure is measured ``--repeats`` times after a warm-up call, by the wall clock and by
the process's CPU time; the JSON gives the median and the best (min) of each, and the
speed-ups and shares of the ceiling per statistic (``wall_median``: fp32 wall median /
packed wall median, and so on). On a shared machine a long call is often preempted: the
CPU time then measures the kernels' own work, the wall clock what a user waits (CPU time
of threaded cases sums the threads). ``assembly`` counts the popcount instructions numba emitted for the
tile kernel (numba's ``inspect_asm`` on a fresh, uncached compilation). Prints one JSON
object.

    python benchmarks/xnor_speed.py [--repeats 15] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path

import llvmlite.binding as llvm
import numba
import numpy as np
import torch

from binlearn.binary.kernels import numba_cpu
from binlearn.binary.kernels.numba_cpu import (
    PARALLEL_MIN_WORD_OPS,
    pack_sign_matrix,
    xnor_popcount_dense,
)
from binlearn.binary.kernels.reference import dense_sign_matmul
from binlearn.binary.packing import pack_signs, to_numpy_words, words_for

CASES = [(256, 784, 4096), (256, 4096, 4096), (1, 4096, 4096), (64, 4096, 1000)]
CEILING_WORDS = 128  # the most words per row the ceiling uses
L1D_FALLBACK = 32 * 1024  # where sysfs does not say


def l1d_bytes() -> tuple[int, str]:
    """This CPU's level-1 data cache per core, and where the figure comes from."""
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if level == "1" and kind in ("Data", "Unified") and size[:-1].isdigit():
            scale = {"K": 1024, "M": 1024**2}.get(size[-1].upper())
            if scale:
                return int(size[:-1]) * scale, "sysfs"
    return L1D_FALLBACK, "fallback (sysfs has no L1d size)"


def ceiling_words(rows: int, l1d: int) -> int:
    """Words per row of the ceiling's rows + 1 tile: a multiple of 16 filling at most 3/4 of L1d."""
    words = (3 * l1d // 4) // (rows * 8) // 16 * 16
    return max(16, min(CEILING_WORDS, words))


@numba.njit
def _ceiling_loop(x, tile, out, features, repeats):
    for _ in range(repeats):
        numba_cpu.outer_block(x, tile, out, 0, 0, 0, features)


def timings_ms(function, repeats: int) -> dict[str, list[float]]:
    """Wall-clock and process CPU milliseconds of ``repeats`` calls after a warm-up call."""
    function()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        cpu.append(1e3 * (time.process_time() - start_cpu))
        wall.append(1e3 * (time.perf_counter() - start))
    return {"wall": wall, "cpu": cpu}


def summary(times: dict[str, list[float]]) -> dict:
    return {f"{clock}_{name}": round(reduce(values), 4) for clock, values in times.items()
            for name, reduce in (("median", statistics.median), ("best", min))}


def ceiling(repeats: int, generator: np.random.Generator) -> dict:
    """Binary GOPS of the kernel's register block on L1-resident rows (one thread)."""
    rows, columns = numba_cpu.BLOCK_ROWS, numba_cpu.BLOCK_VECTORS * numba_cpu.LANES
    l1d, l1d_source = l1d_bytes()
    words = ceiling_words(rows + columns, l1d)
    x = generator.integers(0, 2**63, (rows, words), dtype=np.int64).view(np.uint64)
    tile = generator.integers(0, 2**63, (words, columns), dtype=np.int64).view(np.uint64)
    out = np.empty((rows, columns), np.int32)
    features = np.int64(64 * words)
    loops = 1_000 * CEILING_WORDS // words  # about half a millisecond a call: rarely preempted
    times = timings_ms(lambda: _ceiling_loop(x, tile, out, features, loops), repeats)
    expected = (64 * words - 2 * np.array(
        [[sum(bin(int(a ^ b)).count("1") for a, b in zip(x[r], tile[:, c], strict=True))
          for c in range(columns)] for r in range(rows)]))
    ops = 2 * rows * columns * 64 * words * loops
    return {**{f"gops_{key}": round(ops / value / 1e6, 1) for key, value in summary(times).items()},
            "block": f"{rows} x {columns}", "words_per_row": words,
            "l1_bytes": (rows + columns) * words * 8, "l1d_bytes": l1d, "l1d_from": l1d_source,
            "ceiling_repeats": loops,
            "exact": bool(np.array_equal(out, expected))}


def _popcounts(asm: str) -> dict:
    found = re.findall(r"vpopcntq\s+[^\n]*", asm)
    return {"vpopcntq_zmm": sum("zmm" in f for f in found), "vpopcntq_ymm": sum("ymm" in f for f in found),
            "vpopcntq_xmm": sum("xmm" in f for f in found),
            "scalar_popcnt": len(re.findall(r"\bpopcnt[qlw]?\s", asm))}


def assembly() -> dict:
    """Popcount instructions in the tile kernels, compiled afresh (cached code cannot be inspected)."""
    x, w, out = np.zeros((4, 8), np.uint64), np.zeros((32, 8), np.uint64), np.zeros((4, 32), np.int32)
    outer = numba.njit(numba_cpu.outer_tile.py_func)
    outer(x, w, np.int64(512), out, 0, 32, np.zeros((8, 32), np.uint64))
    dot = numba.njit(numba_cpu.dot_rows.py_func)
    dot(x, w, np.int64(512), out, 0, 32)
    with open("/proc/cpuinfo" if os.path.exists("/proc/cpuinfo") else os.devnull) as info:
        flags = info.read()
    return {"numba_cpu.outer_tile": _popcounts("\n".join(outer.inspect_asm().values())),
            "numba_cpu.dot_rows": _popcounts("\n".join(dot.inspect_asm().values())),
            "cpu_has_avx512_vpopcntdq": "avx512_vpopcntdq" in flags,
            "llvm_host_cpu": llvm.get_host_cpu_name()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    top = ceiling(max(args.repeats, 100), np.random.default_rng(args.seed))
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
        fp32 = timings_ms(lambda x=x, w_t=w_t: torch.matmul(x, w_t), args.repeats)
        packed = timings_ms(lambda xw=x_words, ww=w_words, f=features, o=out:
                            xnor_popcount_dense(xw, ww, f, out=o), args.repeats)
        x_numpy = x.numpy()
        pack = timings_ms(lambda v=x_numpy: pack_sign_matrix(v), args.repeats)
        threaded = (numba.get_num_threads() > 1
                    and batch * outputs * words_for(features) >= PARALLEL_MIN_WORD_OPS)
        threads = numba.get_num_threads() if threaded else 1
        ops = 2 * batch * features * outputs
        fp32_summary, packed_summary = summary(fp32), summary(packed)
        gops = {key: ops / value / 1e6 for key, value in packed_summary.items()}
        cases.append({
            "B": batch, "K": features, "N": outputs,
            "fp32_ms": fp32_summary, "packed_ms": packed_summary, "pack_input_ms": summary(pack),
            "speedup": {key: round(fp32_summary[key] / packed_summary[key], 2) for key in packed_summary},
            "binary_gops": {key: round(value, 1) for key, value in gops.items()},
            "share_of_ceiling": {key: round(value / (top[f"gops_{key}"] * threads), 3)
                                 for key, value in gops.items()},
            "threaded": threaded, "threads": threads, "exact": bool(exact),
        })
    print(json.dumps({
        "benchmark": "xnor_speed", "ops_convention": "2 binary ops per +-1 multiply-accumulate",
        "ceiling": top, "cases": cases, "assembly": assembly(), "repeats": args.repeats, "seed": args.seed,
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
                    "load_average": [round(v, 2) for v in os.getloadavg()]},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__, "numba": numba.__version__},
    }, indent=1))


if __name__ == "__main__":
    main()
