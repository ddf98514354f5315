"""The command-line options of ``binlearn train`` and ``binlearn convert``, and the parsing of
a recorded command line (a results-file row's ``command``) with them.

The options are defined here, in the experiment layer, so that the CLI (which adds them to
its sub-commands) and ``binlearn reproduce`` (which reads recorded commands back) share one
definition and the experiment layer never imports the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["add_train_arguments", "add_convert_arguments", "seconds", "RecordedRun", "recorded_run"]


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, not {text!r}")
    return value


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``binlearn train``."""
    parser.add_argument("config", nargs="?", help="experiment TOML file (see configs/)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (TOML syntax), repeatable")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue a run (interrupted, or with --set train.epochs=N / a schedule "
                             "starting now: schedule.decay_start, cosine_epochs, lr_decay, anneal_flips, "
                             "anneal_gamma)")
    parser.add_argument("--branch-from", metavar="RUN_DIR",
                        help="start a new run of CONFIG from RUN_DIR's latest checkpoint (epoch K) and "
                             "train epochs K+1..train.epochs under CONFIG; RUN_DIR is left untouched")
    parser.add_argument("--run-dir", help="where to write the run (default: RUNS_ROOT/NAME-TIME)")
    parser.add_argument("--runs-root", default="runs", help="parent folder of new run directories")
    parser.add_argument("--data-dir", help="dataset folder (default: $BINLEARN_DATA, else the user cache)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or lines")
    parser.add_argument("--log-interval", type=seconds, default=60.0, metavar="SECONDS",
                        help="where stderr is not a terminal (nohup, a batch job): a progress line "
                             "every SECONDS within an epoch and one per epoch (0: epoch lines only; "
                             "default 60)")


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``binlearn convert``."""
    parser.add_argument("run_dir")
    parser.add_argument("--timesteps", type=int, default=32, metavar="T", help="time steps (default 32)")
    parser.add_argument("--percentile", type=float, default=99.7, metavar="P",
                        help="threshold balancing: P-th percentile of each ReLU layer's activations on "
                             "training images (100: the max; default 99.7)")
    parser.add_argument("--reset", default="subtract", help="after a spike: subtract (default) | zero")
    parser.add_argument("--one-step", action="store_true",
                        help="no layer-to-layer delay: all layers update in the same time step")
    parser.add_argument("--init-half", action="store_true", help="membranes start at θ/2 (default 0)")
    parser.add_argument("--encoding", default="direct", help="direct (constant current) | poisson (seeded)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the calibration subset and of the Poisson input")
    parser.add_argument("--calibration-images", type=int, default=10000, metavar="N",
                        help="training images for threshold balancing (default 10000)")
    parser.add_argument("--batch-size", type=int, default=500, help="test images per simulated batch")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--output", metavar="DIR", help="where to write spiking.json and latency.png "
                                                        "(default: RUN_DIR)")
    parser.add_argument("--compare", nargs="*", default=[], metavar="SPIKING_JSON",
                        help="other conversions' spiking.json to draw on the same latency.png")
    parser.add_argument("--quiet", action="store_true")


@dataclass(frozen=True)
class RecordedRun:
    """What a row's recorded ``command`` ran: ``binlearn train CONFIG [--set ...]`` and, for a
    spiking row, ``&& binlearn convert RUN_DIR [options]`` (as ConvertSettings keyword values)."""

    config: str
    settings: list[str]
    convert: dict[str, Any] | None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="binlearn", add_help=False)
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(commands.add_parser("train"))
    add_convert_arguments(commands.add_parser("convert"))
    return parser


def _parse(tokens: list[str]) -> argparse.Namespace | None:
    """``tokens`` (after ``binlearn``) parsed as a train or convert command line; None when it
    would not run (another command, an unknown option, a bad value, --help). Prints nothing."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return _parser().parse_args(tokens)
        except SystemExit:
            return None


def _convert_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ConvertSettings values a parsed ``binlearn convert`` gives other than the defaults."""
    from binlearn.artifacts.spiking import ConvertSettings

    defaults = ConvertSettings()
    return {name: getattr(args, name) for name in ConvertSettings.__dataclass_fields__
            if getattr(args, name) != getattr(defaults, name)}


def recorded_run(command: str) -> RecordedRun | None:
    """Parse a row's recorded command with binlearn's own options (``--set=x``, options in any
    order, ``--quiet``/``--log-interval`` and other options that do not change the run); None
    when it is not one ``binlearn train CONFIG`` command, optionally followed by
    ``&& binlearn convert`` of its run directory: e.g. prose pointing at several commands, a
    ``--resume``, an unbalanced quote."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="&;|")
    lexer.whitespace_split = True  # words split at blanks and at unquoted &&, as a shell does
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    parts: list[list[str]] = [[]]
    for token in tokens:
        if token == "&&":
            parts.append([])
        else:
            parts[-1].append(token)
    if len(parts) > 2 or any(part[:1] != ["binlearn"] for part in parts):
        return None
    train = _parse(parts[0][1:])
    if train is None or train.command != "train" or not train.config or train.resume or train.branch_from:
        return None
    convert = None
    if len(parts) == 2:
        args = _parse(parts[1][1:])
        if args is None or args.command != "convert":
            return None
        if train.run_dir is not None and Path(args.run_dir) != Path(train.run_dir):
            return None
        convert = _convert_settings(args)
    return RecordedRun(train.config, list(train.set), convert)
