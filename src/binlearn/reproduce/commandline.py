"""The command-line options of ``binlearn train`` and ``binlearn convert`` (the CLI adds them
to its sub-commands; they move into cli.py next)."""

from __future__ import annotations

import argparse

__all__ = ["add_train_arguments", "add_convert_arguments", "seconds"]


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
