"""The run directory as a record that loses nothing and ignores nothing (issue 17): a resumed
checkpoint equal to the uninterrupted one in every tensor and dtype, one process per run
directory, torn metrics lines, stale temporaries, and resume/branch settings that take effect
or are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from binlearn.experiment import load_config, train
from binlearn.experiment.checkpoint import load_checkpoint
from binlearn.experiment.config import default_config

ROOT = Path(__file__).resolve().parents[2]
STE_DIGITS = str(ROOT / "configs/baselines/digits-ste-binary-mlp.toml")  # the STE baseline

pytestmark = pytest.mark.usefixtures("one_thread")

EP_CONFIG = Path(__file__).parents[2] / "configs" / "laydevant2021" / "fc-binary-weights.toml"
EP_QUICK = ["data.dataset=\"digits\"", "model.hidden=[16]", "rule.free_steps=5", "rule.nudged_steps=3",
            "train.threads=1"]
STE_QUICK = ["model.hidden=[16]", "data.batch_size=128", "train.threads=1"]
TIMES = {"train_seconds"}  # wall-clock figures: the only checkpoint entries two runs may differ in


def _run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "binlearn", *args], capture_output=True, text=True,
                          env=os.environ.copy(), cwd=cwd, timeout=300)


def _leaves(state, prefix=""):
    if isinstance(state, dict):
        for key, value in state.items():
            yield from _leaves(value, f"{prefix}/{key}")
    elif isinstance(state, list | tuple):
        for index, value in enumerate(state):
            yield from _leaves(value, f"{prefix}/{index}")
    else:
        yield prefix, state


def _assert_same_checkpoint(first: Path, second: Path) -> None:
    """The whole checkpoint: every tensor equal with its dtype, every other entry equal."""
    pair = [dict(_leaves({k: v for k, v in load_checkpoint(run / "checkpoint.pt").items() if k not in TIMES}))
            for run in (first, second)]
    assert pair[0].keys() == pair[1].keys()
    for key, value in pair[0].items():
        other = pair[1][key]
        if isinstance(value, torch.Tensor):
            assert value.dtype == other.dtype, f"{key}: {value.dtype} != {other.dtype}"
            assert torch.equal(value, other), key
        else:
            assert value == other, key


def test_resumed_bop_checkpoint_is_the_uninterrupted_one_in_every_tensor_and_dtype(tmp_path):
    train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=3"]), tmp_path / "full", quiet=True)
    train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=2"]), tmp_path / "cut", quiet=True)
    train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=3"]), tmp_path / "cut", resume=True, quiet=True)
    resumed = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    flips = [value for key, value in _leaves(resumed) if key.endswith("/flips")]
    assert flips and all(v.dtype == torch.int64 for v in flips)
    _assert_same_checkpoint(tmp_path / "full", tmp_path / "cut")


def test_bop_state_round_trip_keeps_every_dtype():
    from binlearn.rules import Bop

    weight = torch.nn.Parameter(torch.ones(4, 3))
    optimizer = Bop([weight], gamma=0.5, threshold=0.0)
    weight.grad = -torch.ones(4, 3)
    optimizer.step()
    again = Bop([torch.nn.Parameter(torch.ones(4, 3))], gamma=0.5, threshold=0.0)
    again.load_state_dict(optimizer.state_dict())
    state = next(iter(again.state.values()))
    assert state["flips"].dtype == torch.int64 and state["momentum"].dtype == torch.float32
    assert int(state["flips"]) == int(next(iter(optimizer.state.values()))["flips"])


def _wait_for(predicate, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_train_on_a_busy_run_directory_is_refused_and_a_stale_lock_taken_over(tmp_path):
    """Two trainings on one --run-dir: the second is refused in one line naming the holder's pid
    and writes nothing; after the holder is killed (SIGKILL: its lock file stays behind), a
    resume takes the stale lock over."""
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "binlearn", "train", STE_DIGITS,
                              *[f"--set={s}" for s in STE_QUICK],
                              "--set=train.epochs=100000", "--run-dir", str(run), "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (run / "config.toml").is_file())
        assert (run / ".lock").read_text().split() == [str(first.pid)]
        second = _run_cli("train", STE_DIGITS, *[f"--set={s}" for s in STE_QUICK], "--set=model.hidden=[8]",
                          "--set=train.epochs=2", "--run-dir", str(run), "--quiet")
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1 and f"in use by another binlearn process (pid {first.pid})" \
            in second.stderr
        # the holder's files are its own: the refused run wrote nothing
        assert "hidden = [16]" in (run / "config.toml").read_text()
        resumed_too = _run_cli("train", "--resume", str(run), "--set=train.epochs=100001", "--quiet")
        assert resumed_too.returncode == 2 and f"pid {first.pid}" in resumed_too.stderr
        _wait_for(lambda: (run / "checkpoint.pt").is_file())
    finally:
        first.kill()
        first.communicate(timeout=60)
    assert (run / ".lock").is_file()  # SIGKILL leaves the lock file: stale, not held
    done = load_checkpoint(run / "checkpoint.pt")["epoch"]
    resumed = _run_cli("train", "--resume", str(run), f"--set=train.epochs={done + 1}", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == done + 1
    assert not (run / ".lock").exists()  # let go on exit
    assert _run_cli("eval", str(run)).returncode == 0


def test_a_torn_metrics_line_is_skipped_with_a_warning_and_survives_resume(tmp_path):
    from binlearn.experiment.compare import compare_runs
    from binlearn.experiment.rundir import MetricsWarning, read_metrics

    run = tmp_path / "run"
    train(default_config([*STE_QUICK, "train.epochs=3"]), run, quiet=True)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    torn = lines[1][: len(lines[1]) // 2]
    (run / "metrics.jsonl").write_text("\n".join([lines[0], torn, lines[2]]) + "\n")
    with pytest.warns(MetricsWarning, match=r"metrics.jsonl line 2 is not a JSON record"):
        log = read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in log.records] == [1, 3] and log.skipped == [2]

    with pytest.warns(MetricsWarning, match="line 2"):
        train(default_config([*STE_QUICK, "train.epochs=4"]), run, resume=True, quiet=True)
    after = (run / "metrics.jsonl").read_text().splitlines()
    assert after[:3] == [lines[0], torn, lines[2]]  # nothing it could not read is rewritten
    assert json.loads(after[3])["epoch"] == 4 and len(after) == 4

    with pytest.warns(MetricsWarning):
        rows = compare_runs([run])
    assert rows[0]["skipped_lines"] == [2] and rows[0]["epochs"] == 4
    shown = _run_cli("compare", str(run))
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.strip().splitlines() == [
        f"binlearn: warning: {run / 'metrics.jsonl'} line 2 is not a JSON record (torn or edited); skipped"]
    assert "skipped unreadable metrics.jsonl line(s) 2" in shown.stdout


def test_no_stale_temporary_after_a_kill_during_a_checkpoint_write_and_resume(tmp_path):
    """A process killed inside the checkpoint write (after the temporary is full, before the
    rename) leaves ``.checkpoint.pt.*.tmp``; the next train of the directory removes it and
    only it (another command's temporary in the directory is not the run's)."""
    run = tmp_path / "run"
    train(default_config([*STE_QUICK, "train.epochs=1"]), run, quiet=True)
    killed = subprocess.run([sys.executable, "-c", (
        "import os, sys; from binlearn.atomic import atomic_write\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "atomic_write(sys.argv[2], lambda handle: (handle.write(data), handle.flush(), os._exit(9)))"),
        str(run / "checkpoint.pt"), str(run / "checkpoint.pt")], capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9, killed.stderr
    stale = list(run.glob(".checkpoint.pt.*.tmp"))
    assert len(stale) == 1 and stale[0].stat().st_size == (run / "checkpoint.pt").stat().st_size
    other = run / ".model.packed.npz.abcd1234.tmp"
    other.write_bytes(b"an export in progress")
    train(default_config([*STE_QUICK, "train.epochs=2"]), run, resume=True, quiet=True)
    assert not list(run.glob(".checkpoint.pt.*.tmp")) and other.is_file()
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in this process (no interpreter start-up): exit status, stdout, stderr."""
    from binlearn.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert err.startswith("binlearn: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert needle in err, err


def _model_state(run: Path) -> dict[str, torch.Tensor]:
    return dict(_leaves(load_checkpoint(run / "checkpoint.pt")["learner"]["model"]))


def test_a_branch_trains_with_its_own_learning_rate(tmp_path):
    """--branch-from P --set optimizer.lr=0.05 (STE) and optimizer.bias_learning_rates (EP/Bop) take effect:
    the optimizer's groups hold the new rates and the weights differ from the parent-config branch."""
    train(default_config([*STE_QUICK, "train.epochs=1"]), tmp_path / "parent", quiet=True)
    for name, extra in (("same", []), ("faster", ["optimizer.lr=0.05"])):
        train(default_config([*STE_QUICK, "train.epochs=2", *extra]), tmp_path / name, quiet=True,
              branch_from=tmp_path / "parent")
    optimizers = load_checkpoint(tmp_path / "faster" / "checkpoint.pt")["learner"]["optimizers"]
    groups = optimizers["float"]["param_groups"]
    assert {group["lr"] for group in groups} == {0.05}
    same, faster = _model_state(tmp_path / "same"), _model_state(tmp_path / "faster")
    assert any(not torch.equal(same[key], faster[key]) for key in same)
    meta = json.loads((tmp_path / "faster" / "meta.json").read_text())
    assert meta["branched_from"]["changes"]["optimizer.lr"] == [0.001, 0.05]

    train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=1"]), tmp_path / "ep", quiet=True)
    for name, extra in (("ep-same", []), ("ep-bias", ["optimizer.bias_learning_rates=[0.5, 0.2]"])):
        train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=2", *extra]), tmp_path / name, quiet=True,
              branch_from=tmp_path / "ep")
    float_groups = load_checkpoint(tmp_path / "ep-bias" / "checkpoint.pt")["learner"]["optimizers"]["float"]
    assert [group["lr"] for group in float_groups["param_groups"]][:2] == [0.5, 0.2]
    same, bias = _model_state(tmp_path / "ep-same"), _model_state(tmp_path / "ep-bias")
    assert any(not torch.equal(same[key], bias[key]) for key in same if key.endswith("bias"))


def test_a_resume_with_an_edited_learning_rate_trains_with_it_and_says_so(tmp_path, capsys):
    """An lr edited into config.toml before --resume is applied (the resumed run is the branch
    with that lr, bit for bit), printed in one line and recorded in meta.json."""
    run = tmp_path / "run"
    train(default_config([*STE_QUICK, "train.epochs=1"]), run, quiet=True)
    train(default_config([*STE_QUICK, "train.epochs=2", "optimizer.lr=0.01"]), tmp_path / "branch",
          quiet=True, branch_from=run)
    text = (run / "config.toml").read_text()
    assert "lr = 0.001\n" in text
    (run / "config.toml").write_text(text.replace("lr = 0.001\n", "lr = 0.01\n"))
    code, _, err = _cli(capsys, "train", "--resume", str(run), "--set", "train.epochs=2", "--quiet")
    assert code == 0, err
    assert err.splitlines() == [f"binlearn: resuming {run} after epoch 1 with optimizer.lr 0.001 → 0.01, "
                                "train.epochs 1 → 2 (recorded in meta.json)"]
    _assert_same_checkpoint(tmp_path / "branch", run)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["resumed"][-1]["changes"] == {"optimizer.lr": [0.001, 0.01], "train.epochs": [1, 2]}
    assert meta["resumed"][-1]["threads"] == 1 and meta["threads"] == 1


def test_resume_refuses_what_changes_the_run(tmp_path, capsys):
    """Fewer epochs than done, and hand edits of the seed, the shuffling, the model, the estimator
    are refused in one line, leaving the directory as it was; where the data lives may change."""
    run = tmp_path / "run"
    train(default_config([*STE_QUICK, "train.epochs=3"]), run, quiet=True)
    before = {name: (run / name).read_bytes() for name in ("config.toml", "summary.json", "meta.json",
                                                           "checkpoint.pt", "metrics.jsonl")}
    for epochs, needle in (("1", "3 epochs are trained already: give train.epochs >= 3"),
                           ("-1", "train.epochs must be >= 1, got -1")):
        code, _, err = _cli(capsys, "train", "--resume", str(run), "--set", f"train.epochs={epochs}")
        _one_line_error(code, err, needle)
    text = before["config.toml"].decode()
    for old, new, key in (("seed = 0", "seed = 1", "'seed'"),
                          ("shuffle = true", "shuffle = false", "'train.shuffle'"),
                          ("hidden = [16]", "hidden = [17]", "'model.hidden'"),
                          ("batch_size = 128", "batch_size = 64", "'data.batch_size'")):
        assert old in text, old
        (run / "config.toml").write_text(text.replace(old, new))
        code, _, err = _cli(capsys, "train", "--resume", str(run), "--set", "train.epochs=4")
        _one_line_error(code, err, f"--resume cannot change {key}")
    (run / "config.toml").write_bytes(before["config.toml"])
    for name, content in before.items():
        assert (run / name).read_bytes() == content, name
    code, _, err = _cli(capsys, "train", "--resume", str(run), "--run-dir", str(tmp_path / "elsewhere"))
    _one_line_error(code, err, "drop --run-dir")
    code, _, err = _cli(capsys, "train", "--resume", str(run), "--set", "train.epochs=4",
                        "--data-dir", str(tmp_path / "data"), "--quiet")
    assert code == 0, err
    meta = json.loads((run / "meta.json").read_text())
    assert meta["resumed"][-1]["changes"]["data.data_dir"] == [None, str(tmp_path / "data")]


def test_where_runs_are_written_bad_values_are_one_line(tmp_path, capsys):
    """--run-dir that is a file, lies under a file or cannot be created; a run name with a path
    separator; --data-dir that is a file (train with downloads on, data download); a config path
    that is a directory; a checkpoint that is a torch file without binlearn's keys."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    quick = [f"--set={s}" for s in [*STE_QUICK, "train.epochs=1"]]
    cases = [(["--run-dir", str(afile)], "is a file, not a directory"),
             (["--run-dir", str(afile / "run")], f"{afile} is a file, not a directory"),
             (["--set=name=\"../escape\"", "--runs-root", str(tmp_path / "runs")], "without path separators"),
             (["--set=data.dataset=\"mnist\"", "--data-dir", str(afile), "--run-dir", str(tmp_path / "m")],
              f"{afile} is a file, not a folder")]
    if Path("/sys").is_dir():  # not writable even for root
        cases.append((["--run-dir", "/sys/binlearn-run"], "cannot create run directory /sys/binlearn-run"))
    if os.geteuid() != 0:  # root may write anywhere
        locked_dir = tmp_path / "read-only"
        locked_dir.mkdir(mode=0o555)
        cases.append((["--run-dir", str(locked_dir / "run")], "not writable"))
    for extra, needle in cases:
        code, _, err = _cli(capsys, "train", STE_DIGITS, *quick, *extra, "--quiet")
        _one_line_error(code, err, needle)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "m").exists()
    code, _, err = _cli(capsys, "data", "download", "mnist", "--data-dir", str(afile / "sub"), "--quiet")
    _one_line_error(code, err, f"mnist: the data folder {afile / 'sub' / 'mnist'} cannot exist")
    code, _, err = _cli(capsys, "train", str(tmp_path))
    _one_line_error(code, err, "is a directory, not a config file")

    run = tmp_path / "run"
    train(default_config([*STE_QUICK, "train.epochs=1"]), run, quiet=True)
    torch.save({"format": 1, "weights": torch.zeros(3)}, run / "checkpoint.pt")
    for command in (["train", "--resume", str(run)], ["eval", str(run)]):
        code, _, err = _cli(capsys, *command)
        _one_line_error(code, err, "a torch file but not a binlearn run's checkpoint (it has no epoch")


def test_data_verify_failure_is_one_error_line_with_status_2(tmp_path, capsys):
    code, out, err = _cli(capsys, "data", "verify", "digits", "mnist", "--data-dir", str(tmp_path))
    _one_line_error(code, err, f"binlearn: error: mnist: {tmp_path / 'mnist'}")
    assert "digits: embedded" in out


def _features(folder: Path, x_train, x_test=None) -> Path:
    import numpy as np

    folder.mkdir()
    x_test = x_train if x_test is None else x_test
    for name, array in (("x_train", x_train), ("y_train", np.arange(len(x_train)) % 2),
                        ("x_test", x_test), ("y_test", np.arange(len(x_test)) % 2)):
        np.save(folder / f"{name}.npy", array)
    return folder


def test_npy_features_beyond_float32_or_without_features_are_refused(tmp_path, capsys):
    import numpy as np

    huge = _features(tmp_path / "huge", np.array([[1.0, 2.0], [1e300, 3.0], [0.0, 1.0], [2.0, 2.0]]))
    empty = _features(tmp_path / "empty", np.zeros((4, 0)))
    for folder, needle in ((huge, "x_train.npy holds values beyond float32's range"),
                           (empty, "its samples hold no features")):
        code, _, err = _cli(capsys, "train", "--set=data.dataset=\"npy\"",
                            f"--set=data.features=\"{folder}\"", "--set=train.epochs=1",
                            "--run-dir", str(tmp_path / f"run-{folder.name}"))
        _one_line_error(code, err, needle)


def test_sigterm_before_the_first_checkpoint_says_none_is_kept(tmp_path):
    """Stopped inside the first epoch (one that would last minutes): no checkpoint exists, and
    the message says so."""
    import signal

    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "binlearn", "train", str(EP_CONFIG),
                                *[f"--set={s}" for s in EP_QUICK], "--set=rule.free_steps=500",
                                "--set=data.batch_size=1", "--set=train.epochs=1", "--run-dir", str(run),
                                "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (run / "config.toml").is_file())
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert err.splitlines() == [f"binlearn: terminated before the first checkpoint: {run} holds no "
                                "checkpoint (nothing to resume; start the run again)"]
    assert not (run / "checkpoint.pt").exists()


def test_a_resume_refuses_a_checkpoint_replaced_while_it_was_starting(tmp_path, monkeypatch):
    """Between reading the checkpoint and taking the lock (while the data loads), another train
    of the directory replaced checkpoint.pt: continuing from the old one would overwrite its
    epochs, so the resume stops in one line."""
    import binlearn.experiment.runner as runner
    from binlearn.experiment import RunError
    from binlearn.experiment.checkpoint import save_checkpoint

    run = tmp_path / "run"
    train(default_config([*STE_QUICK, "train.epochs=1"]), run, quiet=True)
    load = runner.load_dataset

    def another_train_finishes_meanwhile(*args, **kwargs):
        save_checkpoint(run / "checkpoint.pt", load_checkpoint(run / "checkpoint.pt"))
        return load(*args, **kwargs)

    monkeypatch.setattr(runner, "load_dataset", another_train_finishes_meanwhile)
    with pytest.raises(RunError, match="changed while this process was starting"):
        train(default_config([*STE_QUICK, "train.epochs=2"]), run, resume=True, quiet=True)
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
