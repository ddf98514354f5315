"""benchmarks/xnor_speed.py: the popcount ceiling's rows fit this CPU's L1d."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "xnor_speed.py"


def _bench():
    spec = importlib.util.spec_from_file_location("xnor_speed", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ceiling_rows_fit_three_quarters_of_l1d():
    bench = _bench()
    assert bench.ceiling_words(36, 48 * 1024) == 128  # the Xeon: 36 KiB of 48
    assert bench.ceiling_words(36, 32 * 1024) == 80   # Zen 2: 22.5 KiB of 32
    assert bench.ceiling_words(36, 4 * 1024) == 16    # never fewer than 16 words
    assert bench.ceiling_words(36, 1024 * 1024) == 128
    for l1d in (16 * 1024, 32 * 1024, 48 * 1024, 64 * 1024):
        words = bench.ceiling_words(36, l1d)
        assert words % 16 == 0 and (36 * words * 8 <= 3 * l1d // 4 or words == 16)
    size, source = bench.l1d_bytes()
    assert size >= 4096 and source
