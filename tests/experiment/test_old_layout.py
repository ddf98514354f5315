"""Run directories written by the previous config layout (optimizer and schedule keys under
[rule]) still evaluate, export and resume. The fixtures were written by binlearn before the
[optimizer] / [schedule] split (git cef911e): a binary-weight EP run (Bop, cosine schedule with
flip annealing, even/odd relaxation) and a binary STE run (Adam, lr_decay 0.9, torch's
ExponentialLR state in its checkpoint), each trained for one epoch on the embedded digits."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from binlearn.cli import main
from binlearn.experiment import load_config, train
from binlearn.experiment.config import OLD_RULE_KEYS, upgrade_old_layout

FIXTURES = Path(__file__).parents[1] / "fixtures"

pytestmark = pytest.mark.usefixtures("one_thread")


def _copy(tmp_path: Path, name: str) -> Path:
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)
    return run


def _approx_numbers(value):
    """The value with each float in it (in dicts and lists too) wrapped in pytest.approx
    (float32 rounding) and everything else (integers, booleans, None, strings) kept as it is,
    to be compared exactly."""
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-5)
    if isinstance(value, dict):
        return {key: _approx_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_approx_numbers(item) for item in value]
    return value


def _notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "old config layout" in line]


@pytest.mark.parametrize("name", ["old-layout-ep-run", "old-layout-ste-run"])
def test_old_run_directory_evaluates_as_it_trained(tmp_path, capsys, name):
    run = _copy(tmp_path, name)
    assert main(["eval", str(run), "--quiet"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["accuracy"] == json.loads((run / "summary.json").read_text())["test_accuracy"]
    assert len(_notes(out.err)) == 1 and out.err.count("\n") == 1


def test_old_ep_run_directory_exports_bit_exactly(tmp_path, capsys):
    run = _copy(tmp_path, "old-layout-ep-run")
    assert main(["export", str(run), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["verified"]["identical"] == summary["verified"]["samples"] == 360
    # its meta.json predates learning_memory; the export reads it off the checkpoint's optimizers
    assert "learning_memory" not in json.loads((run / "meta.json").read_text())
    assert [row["bits_per_synapse"] for row in summary["learning_memory"]["layers"]] == [33, 33]  # Bop


@pytest.mark.parametrize("name", ["old-layout-ep-run", "old-layout-ste-run"])
def test_old_run_directory_resumes_as_the_new_layout_would_have_trained(tmp_path, capsys, name):
    """Resumed for a second epoch, the old run equals a fresh two-epoch run of the same
    config read in the new layout, bit for bit (for STE: torch's ExponentialLR state becomes
    the shared schedule's epoch count); afterwards its config.toml is in the new layout."""
    run = _copy(tmp_path, name)
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"]) == 0
    out = capsys.readouterr()
    assert len(_notes(out.err)) == 1
    fresh = train(load_config(FIXTURES / name / "config.toml", ["train.epochs=2"]), tmp_path / "fresh",
                  quiet=True)
    resumed = json.loads(out.out)
    assert resumed["test_accuracy"] == fresh["test_accuracy"]
    ours = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    theirs = [json.loads(line) for line in (tmp_path / "fresh" / "metrics.jsonl").read_text().splitlines()]
    for record in (*ours, *theirs):
        record.pop("epoch_seconds")
    # the fixture's epoch 1 was written before binlearn marked epochs trained at chance
    # ("warnings": ["chance"], binlearn.experiment.collapse); the EP fixture's tiny net is one
    assert "warnings" not in ours[0]
    theirs[0].pop("warnings", None)
    if ours[0] != theirs[0]:
        # The fixture's epoch 1 was trained on the machine that made it; float BLAS kernels
        # differ between CPUs (AVX2 / AVX-512) in the last bits, and the resumed epoch 2 starts
        # from those weights. Across machines the runs agree to float32 rounding, not bit for bit.
        assert name == "old-layout-ste-run", "the EP fixture is integer-exact on every machine"
        assert [_approx_numbers(t) for t in theirs] == ours
    else:
        assert ours == theirs
    # bit for bit on any machine: a new-layout branch from the same old checkpoint trains the
    # same second epoch as the resumed old run
    source = _copy(tmp_path / "source", name)
    assert main(["train", str(FIXTURES / name / "config.toml"), "--branch-from", str(source), "--run-dir",
                 str(tmp_path / "branch"), "--set", "train.epochs=2", "--quiet"]) == 0
    capsys.readouterr()
    branch = [json.loads(line) for line in (tmp_path / "branch" / "metrics.jsonl").read_text().splitlines()]
    branch[-1].pop("epoch_seconds")
    assert branch[-1] == ours[-1]
    table = tomllib.loads((run / "config.toml").read_text())
    assert "optimizer" in table and "schedule" in table and not set(table["rule"]) & set(OLD_RULE_KEYS)
    capsys.readouterr()
    assert main(["eval", str(run), "--quiet"]) == 0
    assert not _notes(capsys.readouterr().err)


def test_old_layout_mapping_moves_every_old_key():
    old = tomllib.loads((FIXTURES / "old-layout-ep-run" / "config.toml").read_text())
    new, moved = upgrade_old_layout(old)
    assert sorted(moved) == sorted(k for k in old["rule"] if k in OLD_RULE_KEYS)
    assert new["optimizer"]["name"] == "bop" and new["rule"]["relaxation"] == "even_odd"
    assert new["schedule"]["cosine_epochs"] == 3 and new["schedule"]["anneal_flips"] is True
    assert upgrade_old_layout(new) == (new, [])


def test_old_run_directory_is_read_in_the_new_layout_by_convert(tmp_path, capsys):
    from binlearn.artifacts.spiking import check_convertible
    from binlearn.experiment.runner import load_run

    run = _copy(tmp_path, "old-layout-ste-run")
    config, _ = load_run(run)  # the old [rule] keys are moved, not refused as unknown keys
    check_convertible(config, run)
    assert len(_notes(capsys.readouterr().err)) == 1


def _without_stored_config(tmp_path: Path, name: str) -> Path:
    """The fixture as an older binlearn wrote it: a checkpoint with no config stored in it."""
    import torch

    run = _copy(tmp_path, name)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["config"]
    torch.save(state, run / "checkpoint.pt")
    return run


@pytest.mark.parametrize("how", ["--set", "config.toml", "train()"])
def test_a_seed_change_at_resume_is_refused_without_a_config_in_the_checkpoint(tmp_path, capsys, how):
    """The seed the run started with (meta.json) stands in for the checkpoint's config: a seed
    given with --set, edited into config.toml or passed to train() is refused in one line, as
    it is for a checkpoint that stores its config; the run directory is left as it was."""
    from binlearn.experiment.config import ConfigError

    run = _without_stored_config(tmp_path, "old-layout-ste-run")
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    if how == "train()":
        with pytest.raises(ConfigError, match="cannot change 'seed'"):
            config = load_config(run / "config.toml", ["seed=5", "train.epochs=2"])
            train(config, run, resume=True, quiet=True)
    else:
        edit = ["--set", "seed=5"] if how == "--set" else []
        if how == "config.toml":
            text = (run / "config.toml").read_text()
            (run / "config.toml").write_text(text.replace("seed = 0", "seed = 5"))
            before["config.toml"] = (run / "config.toml").read_bytes()
        assert main(["train", "--resume", str(run), *edit, "--set", "train.epochs=2", "--quiet"]) == 2
        error = capsys.readouterr().err.splitlines()[-1]
        assert error.startswith("binlearn: error: --resume cannot change 'seed'") and "--branch-from" in error
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before


def test_a_checkpoint_without_its_config_still_resumes(tmp_path, capsys):
    run = _without_stored_config(tmp_path, "old-layout-ste-run")
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 2
