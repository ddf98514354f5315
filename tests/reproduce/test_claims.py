"""The [[claim]] entries of docs/results.toml: a paper's relative claim as a paired comparison of
two arms over seeds. The loader's refusals, the statistics and verdicts, ``reproduce --claims``
and one ``reproduce CLAIM --quick`` run end to end (resumable: a finished seed is kept)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from binlearn.cli import main
from binlearn.reproduce.results import FAST_FIXED_POINT, Stats, claims_table, load_results, plot_claims

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results.toml"

ROWS = "".join(f"""
[[row]]
id = "laydevant2021/{stem}"
paper = "laydevant2021"
config = "configs/laydevant2021/{stem}.toml"
row = "{stem}"
paper_figure = "–"
quick = []
quick_note = "as published"
""" for stem in ("fc-float", "fc-binary-weights"))

LEARNING_RATES = "optimizer.learning_rates=[0.2, 0.1]"
TINY = ['data.dataset="digits"', "model.hidden=[32]", "rule.free_steps=10", "rule.nudged_steps=3",
        "train.epochs=2", "train.threads=1", "data.validation_size=100"]


def _claim(name: str = "C1", *, setting: str = "published", within: float = 0.5, seeds: str = "[0, 1, 2]",
           float_figures: str = "", binary_figures: str = "", extra: str = "",
           overrides: list[str] | None = None, quick: list[str] | None = None) -> str:
    own = f"overrides = {json.dumps([LEARNING_RATES])}"  # the float arm's own --set item
    return f"""
[[claim]]
id = "laydevant2021/{name}"
paper = "laydevant2021"
claim = "binary weights reach float EP"
paper_difference = 0.0
within = {within}
setting = "{setting}"
overrides = {json.dumps(overrides if overrides is not None else ["train.epochs=3"])}
quick = {json.dumps(quick if quick is not None else ["train.epochs=1"])}
seeds = {seeds}
{extra}float = {{ row = "laydevant2021/fc-float"{_more(own, float_figures)} }}
binary = {{ row = "laydevant2021/fc-binary-weights"{_more(binary_figures)} }}
"""


def _more(*items: str) -> str:
    """An inline table's further ``key = value`` items, each after a comma (none: nothing)."""
    return "".join(f", {item}" for item in items if item)


def _results(tmp_path: Path, claims: str) -> Path:
    """A results file of the two fc rows (the repository's configs) and ``claims``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "configs").symlink_to(ROOT / "configs")  # the arms' settings are checked against them
    (tmp_path / "docs").mkdir()
    path = tmp_path / "docs" / "results.toml"
    path.write_text(ROWS + claims)
    return path


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t.replace("within = 0.5", "withn = 0.5"), "claim 'laydevant2021/C1': unknown key 'withn'"),
    (lambda t: t.replace("within = 0.5\n", ""), "claim 'laydevant2021/C1': missing within"),
    (lambda t: t.replace("paper_difference = 0.0", 'paper_difference = "0"'),
     "claim 'laydevant2021/C1': paper_difference must be a number (accuracy points), got '0'"),
    (lambda t: t.replace("within = 0.5", "within = -1"), "within must be a number >= 0"),
    (lambda t: t.replace('setting = "published"', 'setting = "fast"'),
     "claim 'laydevant2021/C1': unknown setting 'fast'; valid: published, fast_fixed_point"),
    (lambda t: t.replace('row = "laydevant2021/fc-float"', 'row = "laydevant2021/nope"'),
     "claim 'laydevant2021/C1': float.row 'laydevant2021/nope' is not a row of the file"),
    (lambda t: t.replace("test = [0.9, 0.91]", "test = [0.9, 0.91, 0.92, 0.93]"),
     "claim 'laydevant2021/C1': float.test has 4 figures for 3 seeds"),
    (lambda t: t.replace("test = [0.9, 0.91]", "test = [90.0]"),
     "claim 'laydevant2021/C1': float: test[0] must be an accuracy in [0, 1], got 90.0"),
    (lambda t: t.replace("validation = [0.88]", "validation = [0.88, 1.5]"),
     "float: validation[1] must be an accuracy in [0, 1]"),
    (lambda t: t.replace("seeds = [0, 1, 2]", "seeds = []"), "seeds must be a non-empty list"),
    (lambda t: t.replace("seeds = [0, 1, 2]", "seeds = [0, 0, 1]"), "seeds repeats a seed"),
    (lambda t: t.replace('overrides = ["train.epochs=3"]', 'overrides = ["data.train_sise=8"]'),
     "claim 'laydevant2021/C1': float arm's overrides: unknown key data.train_sise"),
    (lambda t: t.replace('row = "laydevant2021/fc-binary-weights"',
                         'row = "laydevant2021/fc-binary-weights", overrides = ["rule.bta=1"]'),
     "claim 'laydevant2021/C1': binary arm's overrides: unknown key rule.bta"),
    (lambda t: t.replace('quick = ["train.epochs=1"]', 'quick = ["train.epochs=one"]'),
     "float arm's overrides and quick: train.epochs: expected an integer, got 'one'"),
    (lambda t: t.replace('row = "laydevant2021/fc-binary-weights"',
                         'row = "laydevant2021/fc-binary-weights", seeds = [1]'),
     "claim 'laydevant2021/C1': binary: unknown key 'seeds'"),
    (lambda t: t.replace("seeds = [0, 1, 2]", 'seeds = [0, 1, 2]\nlabels = ["BPTT"]'),
     "labels must name the two arms"),
    (lambda t: t.replace('id = "laydevant2021/C1"', 'id = "laydevant2021/fc-float"'),
     "claim 'laydevant2021/fc-float' has the id of a row"),
    (lambda t: t.replace('id = "laydevant2021/C1"', 'id = "lu2020/C1"'), "id must be laydevant2021/NAME"),
    (lambda t: t + _claim(), "two claims share an id"),
])
def test_malformed_claims_are_one_line(tmp_path, capsys, edit, needle):
    good = _claim(float_figures="test = [0.9, 0.91], validation = [0.88]")
    path = _results(tmp_path, good)
    assert main(["reproduce", "--claims", "--results", str(path)]) == 0  # the unedited claim loads
    capsys.readouterr()
    edited = edit(path.read_text())
    assert edited != path.read_text()
    path.write_text(edited)
    assert main(["reproduce", "--claims", "--results", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("binlearn: error: ") and err.count("\n") == 1 and needle in err, err


def test_statistics_and_verdicts(tmp_path, capsys):
    claims = (
        _claim("met", float_figures="test = [0.97, 0.98, 0.99]", binary_figures="test = [0.968, 0.975, 0.99]")
        + _claim("not-met", within=0.2, float_figures="test = [0.97, 0.98, 0.99]",
                 binary_figures="test = [0.968, 0.975, 0.99]")
        + _claim("on-the-threshold", seeds="[4]", float_figures="test = [0.97]",
                 binary_figures="test = [0.965]")
        + _claim("pending", float_figures="test = [0.97, 0.98, 0.99]", binary_figures="test = [0.96, 0.98]")
        + _claim("not-testable", setting="fast_fixed_point", float_figures="test = [0.5, 0.5, 0.5]",
                 binary_figures="test = [0.5, 0.5, 0.5]", extra='not_testable = "needs a GPU"\n'
                 'labels = ["BPTT", "EP"]\nnote = "chosen on validation"\n'))
    results = load_results(_results(tmp_path, claims))
    met, not_met, threshold, pending, untestable = results.claims
    # paired differences in points: -0.2, -0.5, 0.0 -> mean -0.2333, sample sd 0.2517
    assert met.differences == pytest.approx([-0.2, -0.5, 0.0])
    assert met.difference.mean == pytest.approx(-0.7 / 3)
    assert met.difference.sd == pytest.approx(math.sqrt(((0.2 - 0.7 / 3) ** 2 + (0.5 - 0.7 / 3) ** 2
                                                         + (0.7 / 3) ** 2) / 2))
    assert met.float_arm.stats.mean == pytest.approx(98.0) and met.float_arm.stats.sd == pytest.approx(1.0)
    assert (met.verdict, not_met.verdict) == ("met", "not met")  # -0.23 >= -0.5, but not >= -0.2
    assert threshold.differences == pytest.approx([-0.5]) and threshold.verdict == "met"  # on it: met
    assert threshold.difference.sd is None and threshold.difference.text(signed=True) == "-0.50 ± – (n=1)"
    assert pending.verdict == "pending (2 of 3 seeds)" and pending.difference.n == 2
    assert pending.difference.mean == pytest.approx(-0.5)  # over the two seeds both arms have
    assert untestable.verdict == "not testable here"
    assert Stats.of([]).text() == "not run yet"
    # the effective settings: the fast fixed point first, the claim's, the arm's, quick, the seed
    assert untestable.settings("float", 2, quick=True) == [
        *FAST_FIXED_POINT, "train.epochs=3", LEARNING_RATES, "train.epochs=1", "seed=2"]
    assert met.settings("binary", 1) == ["train.epochs=3", "seed=1"]
    # printed, as JSON, as the generated table and as the figure
    path = results.path
    assert main(["reproduce", "--claims", "--results", str(path)]) == 0
    printed = capsys.readouterr().out
    line = "binary − float: -0.23 ± 0.25 points (n=3); paper +0.0, met at >= -0.5\n  verdict     met\n"
    assert line in printed
    assert "EP − BPTT" in printed and "note        chosen on validation" in printed
    assert main(["reproduce", "--claims", "--json", "--results", str(path)]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["verdict"] for r in records] == ["met", "not met", "met", "pending (2 of 3 seeds)",
                                               "not testable here"]
    assert records[0]["difference_points"]["mean"] == pytest.approx(-0.7 / 3)
    assert records[4]["float"]["label"] == "BPTT" and records[4]["setting"] == "fast_fixed_point"
    rows = claims_table(results).rows
    assert rows[0][5] == "binary − float: -0.23 ± 0.25 (n=3)" and rows[0][7] == "met"
    assert rows[4][7] == "not testable here: needs a GPU"
    plot_claims(results, tmp_path / "claims.png")
    assert (tmp_path / "claims.png").stat().st_size > 10_000


def test_reproduce_claims_on_the_results_file(capsys):
    results = load_results(RESULTS)
    assert main(["reproduce", "--claims"]) == 0
    printed = capsys.readouterr().out
    for claim in results.claims:
        assert f"{claim.id}: {claim.claim}\n" in printed
    assert printed.count("not testable here (needs the CIFAR-10 files") == 1
    assert "EP − BPTT: " in printed  # C6 names its arms BPTT and EP, not float and binary
    assert main(["reproduce", "--claims", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["claim"] for r in records] == [c.id for c in results.claims]
    c6 = next(r for r in records if r["claim"] == "laydevant2021/C6-fc-bptt")
    assert (c6["float"]["label"], c6["binary"]["label"]) == ("BPTT", "EP")
    assert c6["float"]["row"] == "laydevant2021/fc-binary-weights-bptt"
    # every verdict printed is the one the recorded figures give, and one of the four kinds
    for record, claim in zip(records, results.claims, strict=True):
        assert record["verdict"] == claim.verdict
        assert record["verdict"] in ("met", "not met", "not testable here") or \
            record["verdict"].startswith("pending (")
    c3 = next(c for c in results.claims if c.id == "laydevant2021/C3-conv")
    assert c3.settings("float", 0)[:2] == list(FAST_FIXED_POINT)


@pytest.mark.parametrize("argv, needle", [
    (["reproduce", "laydevant2021/C5-cifar10"], "claim laydevant2021/C5-cifar10 is not testable here"),
    (["reproduce", "laydevant2021/C1-fc", "--as-recorded"], "--as-recorded applies to a ROW run"),
    (["reproduce", "C1-fc"], "did you mean laydevant2021/C1-fc"),
    (["reproduce", "--claims", "--list"], "give one of ROW (or CLAIM), --list, --claims or --write-docs"),
])
def test_claim_run_refusals_are_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("binlearn: error: ") and err.count("\n") == 1 and needle in err, err


def test_reproduce_a_claim_quick_and_again(tmp_path, capsys, monkeypatch):
    path = _results(tmp_path, _claim("tiny", setting="fast_fixed_point", seeds="[0, 1]", overrides=TINY,
                                     quick=["train.epochs=1"]))
    run = tmp_path / "claim"
    argv = ["reproduce", "laydevant2021/tiny", "--quick", "--run-dir", str(run), "--results", str(path),
            "--set", "rule.nudged_steps=2", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in run.iterdir()) == ["binary-s0", "claim.json", "float-s0"]  # first seed only
    summaries = {arm: json.loads((run / f"{arm}-s0" / "summary.json").read_text())
                 for arm in ("float", "binary")}
    assert all(s["epochs"] == 1 and s["seed"] == 0 and s["dataset"] == "digits" for s in summaries.values())
    config = (run / "float-s0" / "config.toml").read_text()  # the fast fixed point, the arm's, the --set
    assert re.search(r'relaxation = "even_odd"', config) and re.search(r"nudged_steps = 2\b", config)
    assert re.search(r"learning_rates = \[\s*0\.2,\s*0\.1,?\s*\]", config)
    difference = 100 * (summaries["binary"]["test_accuracy"] - summaries["float"]["test_accuracy"])
    quick = ("QUICK RUN, not the claim's settings: train.epochs=1, first seed only; "
             "then --set rule.nudged_steps=2")
    assert quick in printed
    assert f"binary − float: {difference:+.2f} ± – points (n=1) (paired by seed)" in printed
    record = json.loads((run / "claim.json").read_text())
    assert record["difference_points"]["values"] == pytest.approx([difference])
    assert [r["status"] for arm in ("float", "binary") for r in record[arm]["runs"]] == ["trained", "trained"]
    # the same command again: the finished seeds are kept, nothing is trained
    def no_training(*args, **kwargs):
        raise AssertionError("a finished seed was trained again")

    with monkeypatch.context() as patch:
        patch.setattr("binlearn.experiment.runner.train", no_training)
        assert main([*argv, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [r["status"] for arm in ("float", "binary") for r in again[arm]["runs"]] == ["finished before"] * 2
    assert again["difference_points"] == record["difference_points"]
    # a seed with a checkpoint but no summary (stopped after its last epoch) is resumed
    (run / "binary-s0" / "summary.json").unlink()
    assert main([*argv, "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in resumed["binary"]["runs"]] == ["resumed"]
    assert resumed["binary"]["runs"][0]["test_accuracy"] == summaries["binary"]["test_accuracy"]
    # another config in the same --run-dir is refused, not mixed with the finished seeds
    assert main([*argv[:-3], "--set", "rule.nudged_steps=4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds a finished run of another config" in err and "rule.nudged_steps 2 → 4" in err
    assert err.count("\n") == 1
