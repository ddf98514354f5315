"""Training survives its own output and a damaged run directory is one line (issue 25: R42,
R43, LI14-LI16): stderr closed or full never stops a run, a full stdout makes the summary one
line, a run file that is a directory is refused before anything is written, and an atomic
write that fails says what was kept."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from binlearn.atomic import WriteError, atomic_write, atomic_write_text
from binlearn.cli import main
from binlearn.errors import BinlearnError

ROOT = Path(__file__).resolve().parents[2]
STE_DIGITS = ROOT / "configs/baselines/digits-ste-binary-mlp.toml"
pytestmark = pytest.mark.usefixtures("one_thread")


def _bash(command: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=300)


def _train(run: Path, redirect: str, extra: str = "") -> subprocess.CompletedProcess:
    return _bash(f"{sys.executable} -m binlearn train {STE_DIGITS} --set train.epochs=1 "
                 f"--set train.threads=1 --run-dir {run} {extra} {redirect}")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("redirect", ["2>&-", "2>/dev/full"])
def test_a_training_whose_stderr_is_closed_or_full_still_trains(tmp_path, redirect):
    done = _train(tmp_path / "run", f"> {tmp_path}/out.json {redirect}", "--log-interval 0.001")
    assert done.returncode == 0
    assert (tmp_path / "run" / "summary.json").is_file() and (tmp_path / "run" / "checkpoint.pt").is_file()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_stdout_makes_the_summary_one_line(tmp_path):
    done = _train(tmp_path / "run", "--quiet > /dev/full")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cannot print the summary on stdout" in done.stderr
    assert f"{tmp_path / 'run'}/summary.json" in done.stderr and (tmp_path / "run" / "summary.json").is_file()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("robust") / "run"
    assert main(["train", str(STE_DIGITS), "--set", "train.epochs=1", "--set", "train.threads=1",
                 "--run-dir", str(run), "--quiet"]) == 0
    return run


@pytest.mark.parametrize("name", ["meta.json", "metrics.jsonl", "summary.json"])
def test_a_run_file_that_is_a_directory_is_one_line_at_resume(tmp_path, finished_run, capsys, name):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / name).unlink()
    (run / name).mkdir()
    before = sorted(p.name for p in run.iterdir())
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{name} is not a file" in err, err
    assert sorted(p.name for p in run.iterdir()) == before


def test_an_atomic_write_that_fails_says_what_was_kept(tmp_path):
    target = tmp_path / "file.txt"
    target.mkdir()  # a directory where the file goes
    with pytest.raises(WriteError, match="nothing was written") as error:
        atomic_write_text(target, "x")
    assert isinstance(error.value, BinlearnError) and isinstance(error.value, OSError)
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]  # the temporary is removed
    kept = tmp_path / "kept.txt"
    kept.write_text("old")

    def full_disk(handle):
        handle.write(b"new, half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(WriteError, match="No space left on device; the previous file is kept"):
        atomic_write(kept, full_disk)
    assert kept.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "kept.txt"]


def test_a_repeated_epoch_record_is_skipped_with_a_warning(tmp_path):
    """Issue 25 (R48): [1, 2, 3, 2, 4] was kept as it is; epochs only go up."""
    import json

    from binlearn.experiment.rundir import MetricsWarning, read_metrics

    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"epoch": e, "test_accuracy": 0.1 * e}) + "\n" for e in (1, 2, 3, 2, 4)]
    path.write_text("".join(lines))
    with pytest.warns(MetricsWarning, match="line 4 repeats epoch 2 after epoch 3"):
        log = read_metrics(path)
    assert [r["epoch"] for r in log.records] == [1, 2, 3, 4] and log.skipped == [4]
    assert len(log.kept) == 4


def test_temporaries_a_killed_export_or_convert_left_are_removed(finished_run, tmp_path, capsys):
    """Issue 25 (ST01): only the training artefacts' temporaries were cleaned; a temporary of a
    write in progress (written within the last minute) is left alone."""
    import time

    from binlearn.atomic import remove_stale_temporaries

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    old = time.time() - 3600
    stale = [run / ".spiking.json.k1ll3d.tmp", run / ".latency.png.k1ll3d.tmp",
             run / ".model.nir.k1ll3d.tmp"]
    for path in stale:
        path.write_text("half")
        os.utime(path, (old, old))
    fresh = run / ".spiking.json.l1v3.tmp"
    fresh.write_text("being written")
    assert main(["convert", str(run), "--timesteps", "1", "--quiet"]) == 0  # cleans its own leftovers
    assert not stale[0].exists() and not stale[1].exists() and fresh.exists() and stale[2].exists()
    assert remove_stale_temporaries(run, ["model.nir"]) == [stale[2]] and fresh.exists()


def test_a_resume_on_another_thread_count_says_the_last_bits_will_differ(finished_run, tmp_path, capsys):
    """Issue 25 (item 8): the README promised bit-identical resumes across thread counts."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)  # trained with train.threads = 1
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--set", "train.threads=2",
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "last trained on 1 thread, this resume on 2" in err and "train.threads=1" in err
    assert main(["train", "--resume", str(run), "--set", "train.epochs=3", "--quiet"]) == 0
    assert "note:" not in capsys.readouterr().err  # config.toml now says 2 threads, as last time


def test_a_resume_that_fails_leaves_config_toml_as_it_was(finished_run, tmp_path, capsys):
    """Issue 25 (X40b): a resume that diverged had already written its settings, and the next
    plain --resume reused them silently."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = (run / "config.toml").read_text()
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "--set", "train.epochs=2", "--set", "optimizer.lr=1e30",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "diverged" in err, err
    assert (run / "config.toml").read_text() == before
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"]) == 0
    assert "lr" not in capsys.readouterr().err  # the failed attempt's setting is not reused


def test_a_full_disk_at_a_checkpoint_is_one_line_saying_what_is_kept(tmp_path, capsys, monkeypatch):
    """Issue 25, item 4 (F02): torch.save reports a short write as a RuntimeError; the run stops
    with one line naming the checkpoint that is kept and how to continue."""
    import binlearn.experiment.checkpoint as checkpoint

    run = tmp_path / "run"
    assert main(["train", str(STE_DIGITS), "--set", "train.epochs=1", "--set", "train.threads=1",
                 "--run-dir", str(run), "--quiet"]) == 0
    saved = (run / "checkpoint.pt").read_bytes()

    def short_write(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 3840 vs 3734")

    class Usage:
        free = 0

    monkeypatch.setattr(checkpoint.torch, "save", short_write)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: Usage())
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"]) == 2
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if line.startswith("binlearn: error:")]
    assert len(errors) == 1, lines
    assert "No space left on device" in errors[0] and "epoch 1 is kept" in errors[0], lines
    assert (run / "checkpoint.pt").read_bytes() == saved
    assert not list(run.glob(".checkpoint.pt.*.tmp"))
