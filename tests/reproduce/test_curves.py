"""[[curve]] entries of docs/results.toml: accuracy against bits of learning state per synapse,
rendered into a generated table and docs/figures/bits-per-synapse.png (issue 26)."""

from __future__ import annotations

from pathlib import Path

import pytest

from binlearn.cli import main
from binlearn.reproduce.results import curve_table, load_results, plot_curves

ROOT = Path(__file__).resolve().parents[2]

CURVE = '''
[[curve]]
id = "bits-test"
title = "a test curve"
data = "MNIST 8k, 10 epochs"
machine = "test machine"
command = "python benchmarks/bits_per_synapse.py final"
points = [
  {method = "bop", bits_per_synapse = 33, chosen = "t1", validation = 0.93, test = [0.90, 0.91, 0.92]},
  {method = "counter", bits = 8, bits_per_synapse = 9, chosen = "e13", validation = 0.92, test = [0.89, 0.9]},
  {method = "counter", bits = 2, bits_per_synapse = 3, chosen = "e6", test = [0.5]},
]
'''


def _file(tmp_path: Path, text: str) -> Path:
    (tmp_path / "docs").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "docs" / "results.toml"
    path.write_text(text)
    return path


def test_a_curve_loads_and_renders_its_table_and_figure(tmp_path):
    results = load_results(_file(tmp_path, CURVE))
    (curve,) = results.curves
    assert curve.methods() == ["bop", "counter"]
    assert [p.bits for p in curve.points] == [None, 8, 2]
    stats = curve.points[0].stats
    assert stats.mean == pytest.approx(91.0) and stats.sd == pytest.approx(1.0)
    table = curve_table(curve).markdown()
    assert table.split("\n")[2].startswith(
        "| bop | – | 33 | `t1` | 0.9300 | 0.9000, 0.9100, 0.9200 | 91.00 ± 1.00")
    assert "| counter | 2 | 3 | `e6` | – | 0.5000 | 50.00 ± – (n=1) |" in table
    plot_curves(results, tmp_path / "bits.png")
    assert (tmp_path / "bits.png").stat().st_size > 10_000


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t.replace('title = "a test curve"\n', ""), "curve 'bits-test': missing title"),
    (lambda t: t.replace("machine =", "machin ="), "curve 'bits-test': unknown key 'machin'"),
    (lambda t: t.replace("test = [0.5]", "test = [50.0]"), "point 3: test must be an accuracy in [0, 1]"),
    (lambda t: t.replace("bits = 8,", "bits = 0,"), "point 2: bits must be a positive integer"),
    (lambda t: t.replace('chosen = "e6", ', ""), "point 3: missing chosen"),
    (lambda t: t.replace("bits_per_synapse = 9", "bits_per_synapse = 0"), "bits_per_synapse must be"),
    (lambda t: t.replace('id = "bits-test"', 'id = "bits test"'), "id must be letters"),
    (lambda t: t + t, "two curves share an id"),
    (lambda t: t.replace("points = [", "points = 3\nx = [", 1), "unknown key 'x'"),
])
def test_malformed_curves_are_one_line(tmp_path, capsys, edit, needle):
    path = _file(tmp_path, CURVE)
    load_results(path)
    path.write_text(edit(CURVE))
    assert main(["reproduce", "--claims", "--results", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("binlearn: error: ") and err.count("\n") == 1 and needle in err, err


def test_the_repository_curves_name_their_machine_and_command():
    results = load_results(ROOT / "docs" / "results.toml")
    for curve in results.curves:
        assert curve.machine and "bits_per_synapse.py" in curve.command
        assert all(len(point.test) == 3 for point in curve.points), curve.id
