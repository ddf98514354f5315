"""The runner end to end: run directory contents, bit-identical resume, torchrun
equivalence, and the CLI's one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from binlearn.experiment import ConfigError, load_config, load_run, train
from binlearn.experiment.checkpoint import load_checkpoint
from binlearn.experiment.config import default_config
from binlearn.experiment.rundir import MetricsWarning
from binlearn.experiment.runner import resume_config

STE_DIGITS = str(Path(__file__).resolve().parents[2] / "configs/baselines/digits-ste-binary-mlp.toml")
QUICK = ["model.hidden=[32]", "data.batch_size=64", "train.epochs=3"]


def _run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "binlearn", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)


def _tensors(state, prefix=""):
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, dict):
        for key, value in state.items():
            yield from _tensors(value, f"{prefix}/{key}")
    elif isinstance(state, list | tuple):
        for i, value in enumerate(state):
            yield from _tensors(value, f"{prefix}/{i}")


def _assert_same_learner(first: Path, second: Path) -> None:
    """Two run directories' checkpoints hold the same learner state, bit for bit."""
    pairs = [dict(_tensors(load_checkpoint(run / "checkpoint.pt")["learner"])) for run in (first, second)]
    assert pairs[0].keys() == pairs[1].keys()
    for key, tensor in pairs[0].items():
        assert torch.equal(tensor, pairs[1][key]), key


def test_run_directory_and_bit_identical_resume(tmp_path):
    config = default_config(QUICK)
    summary = train(config, tmp_path / "full", quiet=True)
    for name in ("config.toml", "meta.json", "metrics.jsonl", "summary.json", "checkpoint.pt", "curves.png"):
        assert (tmp_path / "full" / name).is_file(), name
    for key in ("test_accuracy", "train_accuracy", "epochs", "train_seconds", "samples_per_second",
                "dataset", "train_size", "seed"):
        assert key in summary
    assert 0 <= summary["test_accuracy"] <= 1
    assert len((tmp_path / "full" / "metrics.jsonl").read_text().splitlines()) == 3
    meta = json.loads((tmp_path / "full" / "meta.json").read_text())
    assert meta["seed"] == 0 and "git_revision" in meta and "binlearn_version" in meta

    # Interrupted after epoch 2 (as a crash would leave it), then resumed to epoch 3.
    train(default_config([*QUICK[:-1], "train.epochs=2"]), tmp_path / "cut", quiet=True)
    config_text = (tmp_path / "full" / "config.toml").read_text()
    (tmp_path / "cut" / "config.toml").write_text(config_text)
    with open(tmp_path / "cut" / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 3, "torn')  # a half-written line (an edit, a partial copy)
    with pytest.warns(MetricsWarning, match="line 3 is not a JSON record"):
        resumed = train(default_config(QUICK), tmp_path / "cut", resume=True, quiet=True)
    _assert_same_learner(tmp_path / "full", tmp_path / "cut")
    assert resumed["test_accuracy"] == summary["test_accuracy"]
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4 and lines[2] == '{"epoch": 3, "torn'  # kept: never rewritten unread
    assert json.loads(lines[3])["epoch"] == 3


EP_CONFIG = Path(__file__).parents[2] / "configs" / "laydevant2021" / "fc-binary-weights.toml"
EP_QUICK = ["data.dataset=\"digits\"", "model.hidden=[16]", "rule.free_steps=5", "rule.nudged_steps=3",
            "train.threads=1"]
# no flips in epoch 4
SCHEDULE = ["schedule.decay_start=2", "schedule.cosine_epochs=1", "schedule.anneal_flips=true"]


def test_resume_may_add_a_schedule_that_leaves_the_trained_epochs_unchanged(tmp_path):
    planned = train(load_config(EP_CONFIG, [*EP_QUICK, *SCHEDULE, "train.epochs=4"]), tmp_path / "planned",
                    quiet=True)
    train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=2"]), tmp_path / "late", quiet=True)
    with pytest.raises(ConfigError, match="schedule.decay_start >= 2") as info:
        resume_config(tmp_path / "late", ["schedule.decay_start=1", "schedule.cosine_epochs=2",
                                          "schedule.anneal_flips=true"])
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot change 'rule.beta'"):
        resume_config(tmp_path / "late", ["rule.beta=0.5"])
    with pytest.raises(ConfigError, match="cannot change 'model.hidden'"):
        resume_config(tmp_path / "late", ["model.hidden=[8]"])

    resumed = train(resume_config(tmp_path / "late", [*SCHEDULE, "train.epochs=4"]), tmp_path / "late",
                    resume=True, quiet=True)
    # the same run as one planned with the schedule from the start, bit for bit
    _assert_same_learner(tmp_path / "planned", tmp_path / "late")
    assert resumed["test_accuracy"] == planned["test_accuracy"]
    last = json.loads((tmp_path / "late" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["epoch"] == 4 and last["thresholds"] == [None, None] and last["flips"] == [0, 0]
    # the directory now describes the continued run, and says when it was resumed
    saved, _ = load_run(tmp_path / "late")
    assert saved.schedule.anneal_flips and saved.schedule.decay_start == 2 and saved.train.epochs == 4
    meta = json.loads((tmp_path / "late" / "meta.json").read_text())
    assert [entry["after_epoch"] for entry in meta["resumed"]] == [2]
    # a schedule already under way cannot be rewritten
    with pytest.raises(ConfigError, match="already trained unchanged"):
        resume_config(tmp_path / "late", ["schedule.decay_start=4", "schedule.cosine_epochs=8",
                                          "train.epochs=6"])


def test_branch_continues_a_run_under_another_config_and_leaves_the_parent_alone(tmp_path):
    """``--branch-from``: a branch with the parent's own config is the uninterrupted run, bit for
    bit; a branch with another config (the data augmented from epoch 3) trains epochs 3.. under it,
    keeps the parent's first records and names the parent in meta.json."""
    planned = train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=3"]), tmp_path / "planned", quiet=True)
    train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=2"]), tmp_path / "parent", quiet=True)
    parent_files = {name: (tmp_path / "parent" / name).read_bytes()
                    for name in ("config.toml", "meta.json", "metrics.jsonl", "checkpoint.pt")}

    same = train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=3"]), tmp_path / "same", quiet=True,
                 branch_from=tmp_path / "parent")
    _assert_same_learner(tmp_path / "planned", tmp_path / "same")
    assert same["test_accuracy"] == planned["test_accuracy"]

    shifted = [*EP_QUICK, "train.epochs=3", "data.augment=true", "data.augment_padding=1",
               "data.augment_flip=false"]
    branch = train(load_config(EP_CONFIG, shifted), tmp_path / "branch", quiet=True,
                   branch_from=tmp_path / "parent")
    assert branch["epochs"] == 3
    records = [json.loads(line) for line in (tmp_path / "branch" / "metrics.jsonl").read_text().splitlines()]
    parent_records = (tmp_path / "parent" / "metrics.jsonl").read_text().splitlines()
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [json.dumps(r) for r in records[:2]] == parent_records
    # epoch 3 trained on shifted images: not the weights of the unshifted epoch 3
    weights = [load_checkpoint(tmp_path / name / "checkpoint.pt")["learner"]["model"]
               for name in ("planned", "branch")]
    assert any(not torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    meta = json.loads((tmp_path / "branch" / "meta.json").read_text())
    assert meta["branched_from"]["after_epoch"] == 2
    assert meta["branched_from"]["run_dir"] == str((tmp_path / "parent").resolve())
    assert meta["branched_from"]["config"]["data"]["augment"] is False
    saved, _ = load_run(tmp_path / "branch")
    assert saved.data.augment and saved.train.epochs == 3
    for name, content in parent_files.items():
        assert (tmp_path / "parent" / name).read_bytes() == content, name

    # refusals, one line each, and no run directory left behind
    for extra, message in ((["train.epochs=2"], "needs train.epochs > 2"),
                           (["train.epochs=3", "model.hidden=[8]"], "does not fit this config's model")):
        done = _run_cli("train", str(EP_CONFIG), *[f"--set={item}" for item in [*EP_QUICK, *extra]],
                        "--branch-from", str(tmp_path / "parent"), "--run-dir", str(tmp_path / "refused"),
                        "--quiet")
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "refused").exists()
    done = _run_cli("train", "--resume", str(tmp_path / "parent"), "--branch-from", str(tmp_path / "parent"))
    assert done.returncode == 2 and "--branch-from" in done.stderr

    # `binlearn compare`: the parent and its branch side by side, one plot
    from binlearn.experiment.compare import compare_runs

    rows = compare_runs([tmp_path / "parent", tmp_path / "branch"], tmp_path / "cmp.png")
    assert [row["epochs"] for row in rows] == [2, 3]
    assert rows[0]["last_test_accuracy"] == json.loads(parent_records[-1])["test_accuracy"]
    assert rows[1]["last_test_accuracy"] == branch["test_accuracy"]
    assert rows[1]["best_test_accuracy"] == max(r["test_accuracy"] for r in records)
    assert rows[0]["branched_from"] is None and rows[1]["branched_from"]["after_epoch"] == 2
    assert (tmp_path / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = _run_cli("compare", str(tmp_path / "parent"), str(tmp_path / "branch"), "--labels", "p,b")
    assert done.returncode == 0 and done.stdout.splitlines()[2].startswith("b ")
    assert "parent after 2" in done.stdout
    for args, message in (([str(tmp_path / "nowhere")], "run directory not found"),
                          ([str(tmp_path / "parent"), "--metric", "validation_accuracy"],
                           "has no validation_accuracy"),
                          ([str(tmp_path / "parent"), "--labels", "a,b"], "2 labels for 1 runs")):
        done = _run_cli("compare", *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1


def test_resume_accepts_a_delayed_schedule_for_ste_runs_too(tmp_path):
    """STE shares the [schedule] of the energy rules: a decay that starts now is accepted on
    --resume, one that would rewrite the epochs already trained is refused in one line, and so
    is a change of the estimator or of the optimizer's kind."""
    train(default_config([*QUICK, "train.epochs=1"]), tmp_path / "ste", quiet=True)
    with pytest.raises(ConfigError, match="schedule.decay_start >= 1") as info:
        resume_config(tmp_path / "ste", ["schedule.lr_decay=0.9", "train.epochs=2"])
    assert "\n" not in str(info.value)
    for key in ("rule.clip_latent=false", 'optimizer.name="sgd"'):
        with pytest.raises(ConfigError, match=f"cannot change '{key.split('=')[0]}'"):
            resume_config(tmp_path / "ste", [key])
    assert resume_config(tmp_path / "ste", ["optimizer.lr=0.1"]).optimizer.lr == 0.1
    later = resume_config(tmp_path / "ste", ["schedule.lr_decay=0.9", "schedule.decay_start=1",
                                             "train.epochs=2"])
    assert later.schedule.lr_decay == 0.9 and later.schedule.decay_start == 1


def test_sigterm_stops_training_with_a_message_and_a_resumable_checkpoint(tmp_path):
    import signal

    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "binlearn", "train", STE_DIGITS,
                                "--set", "model.hidden=[32]",
                                "--set", "train.epochs=100000", "--set", "train.threads=1",
                                "--run-dir", str(run), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=300)
    finally:  # a 100000-epoch run left behind would slow every later test
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "binlearn: terminated" in stderr and "--resume" in stderr
    _, checkpoint = load_run(run)
    done = checkpoint["epoch"]
    assert 1 <= done < 100000
    resumed = _run_cli("train", "--resume", str(run), "--set", f"train.epochs={done + 1}", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert load_run(run)[1]["epoch"] == done + 1


def _run_all_of_it(command: list[str], env: dict, limit: float) -> subprocess.CompletedProcess:
    """``command`` to the end, within ``limit`` seconds (a guard against a hang, not a speed
    test: on the shared 2-core machine a launch takes 5-10× its idle time). On the limit it
    gets SIGTERM, which torchrun forwards to its workers (they run in sessions of their own,
    so killing torchrun alone would leave them training and slowing every later test)."""
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        pytest.fail(f"{' '.join(command[:4])} did not finish in {limit:.0f} s: {err[-2000:]}")
    print(f"{' '.join(command[:4])}: {time.monotonic() - start:.1f} s")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def test_torchrun_two_processes_match_one(tmp_path):
    # torchrun as a module of this interpreter: no PATH lookup, no pyenv shim in between
    pytest.importorskip("torch.distributed.run")
    # 1408 = 22 global batches of 64: both ranks get 32 samples per step. Batch norm keeps
    # per-rank batch statistics, so the equivalence is stated for the plain MLP.
    args = ["--set", "data.train_size=1408", "--set", "model.batch_norm=false",
            "--set", "train.epochs=2", "--set", "model.hidden=[32]", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = _run_all_of_it([sys.executable, "-m", "binlearn", "train", STE_DIGITS,
                             "--run-dir", str(tmp_path / "one"), *args], env, limit=900)
    assert single.returncode == 0, single.stderr
    double = _run_all_of_it([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node=2", "-m", "binlearn", "train", STE_DIGITS,
                             "--run-dir", str(tmp_path / "two"), *args], env, limit=900)
    assert double.returncode == 0, double.stderr[-3000:]
    one = dict(_tensors(load_checkpoint(tmp_path / "one" / "checkpoint.pt")["learner"]["model"]))
    two = dict(_tensors(load_checkpoint(tmp_path / "two" / "checkpoint.pt")["learner"]["model"]))
    for key, tensor in one.items():
        assert torch.allclose(tensor, two[key], atol=1e-5), key
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["world_size"] == 2


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of torchrun worker ``rank`` (a child of ``parent`` with RANK=rank), None if none yet."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def _ended(pid: int) -> bool:
    """Whether process ``pid`` (not our child) has exited: gone, or a zombie its parent has not reaped."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="finds torchrun's workers in /proc")
@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_rank_lost_under_torchrun_ends_the_run_in_one_line_and_it_resumes(tmp_path, how):
    """One of two torchrun workers is lost mid-run. ``killed`` (SIGKILL): the survivor's next
    all-reduce fails at once (gloo: the connection is reset); ``stopped`` (SIGSTOP, a rank that
    hangs): it fails after train.dist_timeout, not torch's 30 minutes. The survivor says, in one
    line, that a rank was lost and which checkpoint is kept, with no traceback of binlearn's
    (torchrun's agent also SIGTERMs it once it sees a worker die, so the line may be the one for
    a stop under torchrun instead; torchrun then prints its own summary and a traceback of its
    own, ChildFailedError, which are not binlearn's to change). The run then resumes from its
    last checkpoint."""
    pytest.importorskip("torch.distributed.run")
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "binlearn", "train", STE_DIGITS, "--set", "model.hidden=[32]", "--set",
               "train.epochs=100000", "--set", "train.dist_timeout=10", "--run-dir", str(run), "--quiet"]
    torchrun = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120  # torchrun's start on a loaded machine
        while (not (run / "checkpoint.pt").is_file() and torchrun.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.05)
        survivor, victim = _rank_pid(torchrun.pid, 0), _rank_pid(torchrun.pid, 1)
        assert survivor is not None and victim is not None and torchrun.poll() is None, "no run started"
        start = time.monotonic()
        os.kill(victim, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        while how == "stopped" and not _ended(survivor) and time.monotonic() - start < 60:
            time.sleep(0.1)
        if how == "stopped":  # torchrun would wait 30 s for a stopped process to take its SIGTERM
            print(f"rank 0 ended {time.monotonic() - start:.1f} s after rank 1 stopped")
            assert _ended(survivor), "rank 0 waits on for the stopped rank"
            os.kill(victim, signal.SIGKILL)
        _, err = torchrun.communicate(timeout=60)
        print(f"torchrun ended {time.monotonic() - start:.1f} s after rank 1 was {how}")
    finally:
        if torchrun.poll() is None:  # a hang: stop it and its workers (torchrun forwards SIGTERM)
            torchrun.terminate()
            torchrun.communicate(timeout=60)
    assert torchrun.returncode != 0
    ours = [line for line in err.splitlines() if line.startswith("binlearn: ")]
    assert len(ours) == 1, err[-4000:]
    assert "lost" in ours[0] and f"--resume {run}" in ours[0], err[-4000:]
    assert str(Path(__file__).parents[2] / "src") not in err, err[-4000:]  # no traceback of binlearn's
    done = load_run(run)[1]["epoch"]
    resumed = _run_cli("train", "--resume", str(run), "--set", f"train.epochs={done + 1}", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert load_run(run)[1]["epoch"] == done + 1


def test_cli_end_to_end(tmp_path, data_root):
    run = tmp_path / "run"
    result = _run_cli("train", "configs/baselines/mnist-ste-binary-weights.toml",
                      "--set", "data.train_size=500", "--set", "train.epochs=3",
                      "--set", "data.batch_size=25", "--set", "model.hidden=[64]",
                      "--run-dir", str(run), "--quiet",
                      env={"BINLEARN_DATA": str(data_root)}, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dataset"] == "mnist" and summary["train_size"] == 500
    assert summary["test_accuracy"] > 0.5
    evaluated = _run_cli("eval", str(run), env={"BINLEARN_DATA": str(data_root)})
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(summary["test_accuracy"])
    listed = _run_cli("data", "list", env={"BINLEARN_DATA": str(data_root)})
    assert "mnist" in listed.stdout and "ok" in listed.stdout and "embedded" in listed.stdout
    verified = _run_cli("data", "verify", "mnist", "fashion-mnist", env={"BINLEARN_DATA": str(data_root)})
    assert verified.returncode == 0 and "mnist: ok" in verified.stdout


@pytest.mark.parametrize("args, needle", [
    (["train", "--set", "data.dataset=kmnist", "--set", "data.download=false"], "kmnist"),
    (["train", "--set", "data.colour=red"], "unknown key data.colour"),
    (["train", "--set", "train.epochs=many"], "train.epochs: expected an integer"),
    (["train", "no/such/config.toml"], "config file not found"),
    (["eval", "no/such/run"], "run directory not found"),
    (["train", "--resume", "no/such/run"], "run directory not found"),
    (["data", "verify", "imagenet"], "unknown dataset 'imagenet'"),
])
def test_user_errors_are_one_line_without_traceback(tmp_path, args, needle):
    result = _run_cli(*args, env={"BINLEARN_DATA": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("binlearn: error:") and needle in result.stderr
    assert result.stderr.count("\n") == 1


def test_corrupt_dataset_and_checkpoint_are_one_line(tmp_path, mnist_dir):
    (tmp_path / "mnist").mkdir()
    for f in mnist_dir.iterdir():
        shutil.copy(f, tmp_path / "mnist" / f.name)
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    result = _run_cli("train", "--set", "data.dataset=mnist", env={"BINLEARN_DATA": str(tmp_path)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train-labels-idx1-ubyte.gz" in result.stderr

    run = tmp_path / "run"
    assert _run_cli("train", STE_DIGITS, "--set", "train.epochs=1", "--set", "model.hidden=[8]", "--run-dir",
                    str(run), "--quiet").returncode == 0
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    result = _run_cli("eval", str(run))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "truncated" in result.stderr


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """Files written through a temporary file are not left owner-only (tempfile's 0600)."""
    from binlearn.atomic import atomic_write_text
    from binlearn.experiment.checkpoint import save_checkpoint

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        save_checkpoint(tmp_path / "c.pt", {"epoch": 1})
    finally:
        os.umask(old)
    for name in ("a.txt", "c.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
