"""The binary stop A/B (run_binary_stop_ab.sh) as a markdown table: test accuracy per seed,
mean ± sd, paired difference by seed against the published T of the same schedule and against
the synchronous published arm, free steps per phase, training samples/s."""
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARMS = ["sync-T20", "sync-noflips", "sync-settled", "sync-extrap", "eo-T20", "eo-noflips", "eo-settled",
        "eo-extrap"]
SEEDS = (0, 1, 2)


def run(arm, seed):
    d = HERE / f"fc-bwa-4k-{arm}-s{seed}"
    if not (d / "summary.json").is_file():
        return None
    summary = json.loads((d / "summary.json").read_text())
    lines = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    steps = [x["free_steps_mean"] for x in lines if "free_steps_mean" in x]
    return {"test": summary["test_accuracy"], "val": summary["validation_accuracy"],
            "sps": summary["samples_per_second"], "steps": statistics.fmean(steps) if steps else 20.0}


def msd(values):
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else "–"


runs = {arm: [run(arm, s) for s in SEEDS] for arm in ARMS}
print("| arm | test s0 / s1 / s2 | mean ± sd | paired vs same-schedule T=20 (points) | paired vs sync T=20 "
      "(points) | free steps per phase | samples/s s0 / s1 / s2 |")
print("|---|---|---|---|---|---|---|")
for arm in ARMS:
    rs = runs[arm]
    if any(r is None for r in rs):
        print(f"| {arm} | incomplete |")
        continue
    tests = [r["test"] for r in rs]
    cells = []
    for base in (arm.split("-")[0] + "-T20", "sync-T20"):
        b = runs[base]
        if any(r is None for r in b) or base == arm:
            cells.append("–")
            continue
        diffs = [100 * (r["test"] - q["test"]) for r, q in zip(rs, b, strict=True)]
        cells.append(" / ".join(f"{d:+.2f}" for d in diffs) + f": **{statistics.fmean(diffs):+.2f} ± "
                     f"{statistics.stdev(diffs):.2f}**")
    steps = " / ".join(format(r["steps"], ".1f") for r in rs)
    speeds = " / ".join(format(r["sps"], ".0f") for r in rs)
    print(f"| {arm} | {' / '.join(f'{t:.4f}' for t in tests)} | **{msd(tests)}** | {cells[0]} | {cells[1]} | "
          f"{steps} | {speeds} |")
if "--json" in sys.argv:
    print(json.dumps(runs, indent=1))
