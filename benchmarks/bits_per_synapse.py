"""Accuracy against bits of learning state per synapse (issue 26): binary EP (±1 weights, 0/1
units, {0, 1} inputs) trained by Bop (float32 momentum: 32 + 1 bits per synapse), by the
integer counter and by the hidden integer weight at b ∈ {2, 3, 4, 6, 8} bits
(:mod:`binlearn.rules.integer_synapse`).

Validation and test accuracy are measured after the last epoch only (train.eval_every = 10;
evaluation does not change training). Protocol: every setting of each (method, b) is chosen on
the validation split with seed 0
(``sweep``), then the chosen one is run with seeds 0, 1, 2 (``final``); ``collect`` prints the
table as JSON (validation figure that chose each setting, test accuracy per seed, mean ± sd,
bits per synapse read from the run's ``learning_memory``). Runs are ``binlearn train`` processes
(one thread each) into ``OUT/SETTING/METHOD-bB-CANDIDATE-sSEED``; a finished run is skipped and
an interrupted one resumed, so the command can be repeated.

    python benchmarks/bits_per_synapse.py sweep  --setting ep-1024 [--out results/runs/bits]
    python benchmarks/bits_per_synapse.py final  --setting ep-1024
    python benchmarks/bits_per_synapse.py collect --setting ep-1024 > table.json

Settings: ``ep-1024`` is configs/laydevant2021/fc-binary-weights-activations-binary-input.toml
with one hidden layer of 1024 (the published 8192 narrowed; Bop at the same width) on MNIST 8k
with 1,000 validation images, 10 epochs; ``local-1035`` the same at the local binary
rule's width and data (configs/colombo2024/mnist-1035-1035.toml: hidden layers of 1035, inputs
binarised at 0, batch 100) with one hidden layer, MNIST 8k, 1,000 validation images, 10 epochs,
at b ∈ {2, 4, 8}, beside the local rule itself on the same data at 784-1035 and at its published 784-1035-1035
(16 bits per synapse: int16 hidden weights). EP on 784-1035-1035 with binary units costs about
6× the one-layer net per sample here (30 free steps through two 1035-wide layers) and is not run.

The candidates put the evidence a first flip needs (in units of one sample's 0/1 product
difference) near 6, 13 or 26: Bop at the published thresholds (2e-7 with γ = 2e-6, B = 64,
β = 2 needs Σ D ≈ 13 with no effective leak over a run) × 0.5, 1, 2; the counter at no leak
(leak_shift 15) with θ · 2^s ≈ E for θ < 2^(b−1) (update_shift s); the hidden weight with
h₀ · 2^s ≈ E (h₀ = ⌈2^(b−1)/8⌉).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BITS = (2, 3, 4, 6, 8)
EVIDENCE = (6, 13, 26)
SEEDS = (0, 1, 2)
BOP_THRESHOLD = (2e-7, 2.5e-7)

SETTINGS: dict[str, dict[str, Any]] = {
    "ep-1024": {
        "config": "configs/laydevant2021/fc-binary-weights-activations-binary-input.toml",
        "layers": 2,
        "overrides": ["model.hidden=[1024]", "data.train_size=8000", "data.validation_size=1000",
                      "train.epochs=10", "train.threads=1", "train.eval_every=10"],
    },
    "local-1035": {
        "config": "configs/laydevant2021/fc-binary-weights-activations-binary-input.toml",
        "layers": 2,
        "overrides": ["model.hidden=[1035]", "data.threshold=0.0", "data.batch_size=100",
                      "data.train_size=8000", "data.validation_size=1000", "train.epochs=10",
                      "train.threads=1", "train.eval_every=10"],
        "bits": (2, 4, 8),
        # the local binary rule itself on the same data: at this width (784-1035) and at its
        # published 784-1035-1035, as published but for the data and epochs; its hidden weights
        # are int16 (16 bits per synapse, the weight is their sign)
        "local": {"config": "configs/colombo2024/mnist-1035-1035.toml", "bits_per_synapse": 16,
                  "overrides": ["data.train_size=8000", "data.validation_size=1000", "train.epochs=10",
                                "train.threads=1", "train.eval_every=10"],
                  "candidates": {"1035": ["model.hidden=[1035]"], "1035-1035": []}},
    },
}


def candidates(method: str, bits: int, layers: int) -> dict[str, list[str]]:
    """name -> the --set items of each candidate of (method, bits)."""
    out: dict[str, list[str]] = {}
    if method == "local_binary":  # not a sweep: each variant is a point of its own
        return dict(SETTINGS[next(k for k in SETTINGS if SETTINGS[k].get("local"))]["local"]["candidates"])
    if method == "bop":
        for factor in (0.5, 1.0, 2.0):
            thresholds = [BOP_THRESHOLD[min(i, 1)] * factor for i in range(layers)]
            out[f"t{factor:g}"] = ["optimizer.name=\"bop\"",
                                   f"optimizer.gamma=[{', '.join(['2e-6'] * layers)}]",
                                   f"optimizer.threshold=[{', '.join(f'{t:.3g}' for t in thresholds)}]"]
        return out
    top = (1 << (bits - 1)) - 1
    for evidence in EVIDENCE:
        if method == "counter":
            shift = 0
            while math.ceil(evidence / (1 << shift)) > top:
                shift += 1
            theta = max(1, min(top, round(evidence / (1 << shift))))
            name = f"e{evidence}-th{theta}-s{shift}"
            items = ["optimizer.name=\"counter\"", "optimizer.gamma=", "optimizer.leak_shift=15",
                     f"optimizer.threshold=[{theta}]", f"optimizer.update_shift={shift}"]
        else:  # s*, s* + 1, s* + 2 with h0 · 2^s* nearest 6
            start = -(-(1 << (bits - 1)) // 8)
            shift = max(0, round(math.log2(EVIDENCE[0] / start))) + EVIDENCE.index(evidence)
            name = f"e{start << shift}-s{shift}"
            items = ["optimizer.name=\"hidden_int\"", "optimizer.gamma=", "optimizer.threshold=",
                     f"optimizer.update_shift={shift}"]
        if name.split("-", 1)[1] not in {key.split("-", 1)[1] for key in out}:
            out[name] = [*items, f"optimizer.bits={bits}"]
    return out


def run_dir(out: Path, setting: str, method: str, bits: int, name: str, seed: int) -> Path:
    plain = method in ("bop", "local_binary")
    return out / setting / (f"{method}-{name}-s{seed}" if plain else f"{method}-b{bits}-{name}-s{seed}")


def train(setting: str, method: str, items: list[str], seed: int, target: Path) -> None:
    if (target / "summary.json").is_file():
        return
    spec = SETTINGS[setting]["local"] if method == "local_binary" else SETTINGS[setting]
    command = [sys.executable, "-m", "binlearn", "train", str(ROOT / spec["config"]), "--quiet",
               *[part for item in [*spec["overrides"], *items, f"seed={seed}"] for part in ("--set", item)]]
    resume = (target / "checkpoint.pt").is_file()
    command += ["--resume", str(target)] if resume else ["--run-dir", str(target)]
    print(" ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=False, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})


def methods(setting: str) -> list[tuple[str, int]]:
    spec = SETTINGS[setting]
    local = [("local_binary", spec["local"]["bits_per_synapse"])] if "local" in spec else []
    return [("bop", 32), *local,
            *[(m, b) for b in reversed(spec.get("bits", BITS)) for m in ("counter", "hidden_int")]]


def summary(target: Path) -> dict[str, Any] | None:
    path = target / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def picks(out: Path, setting: str, method: str, bits: int) -> list[tuple[str, float]] | None:
    """The points of (method, bits): the candidate with the best final validation accuracy
    (seed 0) with that figure; for the local rule, every variant (each a point of its own)."""
    if method != "local_binary":
        pick = chosen(out, setting, method, bits)
        return None if pick is None else [pick]
    records = {name: summary(run_dir(out, setting, method, bits, name, 0))
               for name in candidates(method, bits, SETTINGS[setting]["layers"])}
    if any(record is None for record in records.values()):
        return None
    return [(name, record["validation_accuracy"]) for name, record in records.items() if record]


def chosen(out: Path, setting: str, method: str, bits: int) -> tuple[str, float] | None:
    """The candidate with the best final validation accuracy (seed 0) and that figure."""
    layers = SETTINGS[setting]["layers"]
    scored = []
    for name in candidates(method, bits, layers):
        record = summary(run_dir(out, setting, method, bits, name, 0))
        if record is None:
            return None
        scored.append((record["validation_accuracy"], name))
    best = max(scored, key=lambda pair: pair[0])
    return best[1], best[0]


TITLES = {"ep-1024": "binary EP 784-1024-100, binary inputs (MNIST 8k)",
          "local-1035": "binary EP 784-1035-100 beside the local rule (MNIST 8k)"}
DATA = {"ep-1024": "MNIST 8k (+ 1,000 validation), 10 epochs, batch 64, pixels > 0.5",
        "local-1035": "MNIST 8k (+ 1,000 validation), 10 epochs, batch 100, pixels > 0 (the local rule's)"}


def curve_toml(setting: str, rows: list[dict[str, Any]], machine: str) -> str:
    """The [[curve]] entry of docs/results.toml for ``rows`` (what ``collect`` prints)."""
    points = []
    for row in rows:
        if row["bits_per_synapse"] is None or isinstance(row["bits_per_synapse"], list):
            continue
        bits = "" if row["bits"] is None else f"bits = {row['bits']}, "
        test = ", ".join(f"{value:.4f}" for value in row["test"])
        points.append(f'  {{method = "{row["method"]}", {bits}bits_per_synapse = {row["bits_per_synapse"]}, '
                      f'chosen = "{row["chosen"]}", validation = {row["validation"]}, test = [{test}]}},')
    body = "\n".join(points)
    return (f'[[curve]]\nid = "bits-{setting}"\ntitle = "{TITLES[setting]}"\ndata = "{DATA[setting]}"\n'
            f'machine = "{machine}"\n'
            f'command = "python benchmarks/bits_per_synapse.py sweep|final|toml --setting {setting}"\n'
            f"points = [\n{body}\n]\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=["sweep", "final", "collect", "toml"])
    parser.add_argument("--machine", default="", help="toml: the machine that measured the runs")
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="ep-1024")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "runs" / "bits")
    parser.add_argument("--bits", type=int, nargs="*", default=None, help="only these b (default all)")
    args = parser.parse_args()
    layers = SETTINGS[args.setting]["layers"]
    wanted = [(m, b) for m, b in methods(args.setting)
              if args.bits is None or m in ("bop", "local_binary") or b in args.bits]
    if args.stage == "sweep":
        for method, bits in wanted:
            for name, items in candidates(method, bits, layers).items():
                train(args.setting, method, items, 0, run_dir(args.out, args.setting, method, bits, name, 0))
    elif args.stage == "final":
        for method, bits in wanted:
            found = picks(args.out, args.setting, method, bits)
            if found is None:
                print(f"{method} b={bits}: the sweep is not finished", file=sys.stderr)
                continue
            for (name, _), seed in ((pick, seed) for pick in found for seed in SEEDS[1:]):
                target = run_dir(args.out, args.setting, method, bits, name, seed)
                train(args.setting, method, candidates(method, bits, layers)[name], seed, target)
    else:
        rows = []
        points = [(m, b, p) for m, b in wanted for p in picks(args.out, args.setting, m, b) or []]
        for method, bits, pick in points:
            runs = [summary(run_dir(args.out, args.setting, method, bits, pick[0], seed)) for seed in SEEDS]
            tests = [r["test_accuracy"] for r in runs if r is not None]
            memory = runs[0].get("learning_memory") if runs[0] else None
            per_synapse: Any = (sorted({row["bits_per_synapse"] for row in memory["layers"]})
                                if memory else None)
            if per_synapse and len(per_synapse) == 1:
                per_synapse = per_synapse[0]
            if per_synapse is None and method == "local_binary":
                per_synapse = bits  # int16 hidden weights (runs made before the local rule reported it)
            rows.append({"method": method, "bits": None if method in ("bop", "local_binary") else bits,
                         "bits_per_synapse": per_synapse,
                         "chosen": pick[0], "validation": pick[1], "test": tests,
                         "mean": statistics.fmean(tests) if tests else None,
                         "sd": statistics.stdev(tests) if len(tests) > 1 else None,
                         "learning_memory_kib": memory["kib"] if memory else None,
                         "candidates": {name: (summary(run_dir(args.out, args.setting, method, bits, name, 0))
                                               or {}).get("validation_accuracy")
                                        for name in candidates(method, bits, layers)
                                        if method != "local_binary"}})
        if args.stage == "collect":
            json.dump({"setting": args.setting, **SETTINGS[args.setting], "rows": rows}, sys.stdout, indent=1)
            print()
        else:
            print(curve_toml(args.setting, rows, args.machine))


if __name__ == "__main__":
    main()
