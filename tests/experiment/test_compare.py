"""`binlearn compare` reads metrics.jsonl and meta.json back as typed figures: a field of the
wrong type is one line naming the file, the epoch and the field (issue 25, defect 2)."""

from __future__ import annotations

import json

import pytest

from binlearn.cli import main


def _run(tmp_path, records, meta=None):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if meta is not None:
        (run / "meta.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return run


GOOD = {"epoch": 1, "test_accuracy": 0.5, "train_accuracy": 0.4, "train_loss": 1.0, "epoch_seconds": 2.0}


@pytest.mark.parametrize("field,value", [("test_accuracy", "0.9"), ("test_accuracy", True),
                                         ("epoch_seconds", "12 s"), ("epoch_seconds", [1])])
def test_a_field_of_the_wrong_type_is_one_line(tmp_path, capsys, field, value):
    run = _run(tmp_path, [GOOD, {**GOOD, "epoch": 2, field: value}])
    assert main(["compare", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metrics.jsonl, epoch 2" in err and field in err, err


@pytest.mark.parametrize("meta", ['{"branched_from": "parent"}', '{"branched_from": {"run_dir": 3}}',
                                  '{"branched_from": {"run_dir": "p", "after_epoch": "2"}}', "[1, 2]",
                                  "not json", '{"branched_from": {"run_dir": "p", "after_epoch": true}}'])
def test_an_odd_branch_record_is_a_warning_and_the_figures_still_show(tmp_path, capsys, meta):
    from binlearn.experiment.compare import compare_runs
    from binlearn.experiment.rundir import MetricsWarning

    run = _run(tmp_path, [GOOD], meta)
    if meta == "[1, 2]":  # a list is simply not a run's meta with a branch
        assert compare_runs([run])[0]["branched_from"] is None
        return
    with pytest.warns(MetricsWarning, match="meta.json") as caught:
        assert compare_runs([run])[0]["branched_from"] is None
    assert len(caught) == 1 and "\n" not in str(caught[0].message)


def test_a_good_branch_record_is_read(tmp_path, capsys):
    run = _run(tmp_path, [GOOD], {"branched_from": {"run_dir": "p", "after_epoch": 1, "config": {}}})
    assert main(["compare", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["branched_from"] == {"run_dir": "p", "after_epoch": 1}
