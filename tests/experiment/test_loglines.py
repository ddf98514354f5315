"""Plain progress lines where stderr is not a terminal (nohup, batch jobs)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from binlearn.experiment.loglines import ProgressLines

STE_DIGITS = str(Path(__file__).resolve().parents[2] / "configs/baselines/digits-ste-binary-mlp.toml")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(interval: float, enabled: bool = True) -> tuple[ProgressLines, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    return ProgressLines(enabled, interval, stream=stream, clock=clock), stream, clock


def test_a_line_per_interval_with_rate_accuracy_and_time_left():
    lines, stream, clock = _lines(60)
    lines.start_epoch()
    clock.now += 30
    lines.batch(2, 5, images=300, total=6000, correct=150)  # before the interval: nothing
    assert stream.getvalue() == ""
    clock.now += 30
    lines.batch(2, 5, images=600, total=6000, correct=450)
    assert stream.getvalue() == ("epoch 2/5: 600/6,000 images (10.0 %), 10.0 images/s, "
                                 "train accuracy 0.7500, epoch ends in ~9.0 min\n")
    clock.now += 59
    lines.batch(2, 5, images=1200, total=6000, correct=900)  # 59 s after the last line
    assert stream.getvalue().count("\n") == 1
    clock.now += 1
    lines.batch(2, 5, images=1200, total=6000, correct=900)
    assert stream.getvalue().count("\n") == 2


def test_epoch_line_names_the_figures_and_the_checkpoint():
    lines, stream, clock = _lines(0)
    lines.start_epoch()
    clock.now += 3700
    lines.batch(1, 3, images=50, total=100, correct=10)  # interval 0: epoch lines only
    lines.end_epoch(1, 3, {"train_accuracy": 0.5, "test_accuracy": 0.61234, "validation_accuracy": None,
                           "epoch_seconds": 3600.0}, saved=True)
    lines.end_epoch(2, 3, {"train_accuracy": 0.25, "epoch_seconds": 4.25}, saved=False)
    assert stream.getvalue().splitlines() == [
        "epoch 1/3 done: train accuracy 0.5000, test 0.6123, 60.0 min training, "
        "61.7 min with evaluation; checkpoint saved",
        "epoch 2/3 done: train accuracy 0.2500, 4.2 s training, 61.7 min with evaluation",
    ]


def test_disabled_writes_nothing_and_bad_intervals_are_refused():
    lines, stream, clock = _lines(1, enabled=False)
    lines.start_epoch()
    clock.now += 10
    lines.batch(1, 1, images=1, total=2, correct=1)
    lines.end_epoch(1, 1, {"train_accuracy": 1.0, "epoch_seconds": 1.0}, saved=True)
    assert stream.getvalue() == ""
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError):
            ProgressLines(True, bad)


def _train(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "binlearn", "train", STE_DIGITS, "--set", "train.epochs=2",
                           "--set", "model.hidden=[32]", "--run-dir", str(tmp_path / "run"), *args],
                          capture_output=True, text=True, timeout=300, env={**os.environ})


def test_cli_without_a_terminal_prints_epoch_lines_and_quiet_none(tmp_path):
    done = _train(tmp_path, "--log-interval", "0")
    assert done.returncode == 0, done.stderr
    epochs = [line for line in done.stderr.splitlines() if " done: " in line]
    metrics = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == 2
    for line, record in zip(epochs, metrics, strict=True):
        start = f"epoch {record['epoch']}/2 done: train accuracy {record['train_accuracy']:.4f}"
        assert line.startswith(start)
        assert f"test {record['test_accuracy']:.4f}" in line and line.endswith("checkpoint saved")
    quiet = _train(tmp_path / "quiet", "--quiet")
    assert quiet.returncode == 0 and " done: " not in quiet.stderr
    bad = _train(tmp_path / "bad", "--log-interval", "soon")
    assert bad.returncode == 2 and "expected a number of seconds, not 'soon'" in bad.stderr


def test_a_distributed_line_says_it_is_one_rank_s_share():
    lines, stream, clock = _lines(1)
    lines.start_epoch()
    clock.now += 2
    lines.batch(1, 1, images=100, total=700, correct=50, ranks=2)
    expected = "epoch 1/1: rank 0 of 2, its share: 100/700 images (14.3 %), 50.0 images/s"
    assert stream.getvalue().startswith(expected)


def test_cli_in_epoch_lines_count_the_epoch_s_images(tmp_path):
    done = _train(tmp_path, "--log-interval", "0.000001", "--set", "data.batch_size=32")
    assert done.returncode == 0, done.stderr
    total = json.loads((tmp_path / "run/summary.json").read_text())["train_size"]
    within = [line for line in done.stderr.splitlines()
              if line.startswith("epoch ") and " done: " not in line]
    assert within, done.stderr
    counts = [int(line.split(": ")[1].split("/")[0].replace(",", "")) for line in within]
    assert all(f"/{total:,} images" in line for line in within)
    assert all(0 < count < total and count % 32 == 0 for count in counts)
