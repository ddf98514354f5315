"""``binlearn`` command line: parses arguments and calls :mod:`binlearn.experiment`; nothing else.

Every user error (bad path, corrupt file, unknown config key, wrong type) is printed as one
line ``binlearn: error: ...`` with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import warnings
from pathlib import Path

from binlearn.atomic import WriteError
from binlearn.errors import BinlearnError
from binlearn.stop import Terminated, check, clear, request_termination

__all__ = ["main"]


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, not {text!r}")
    return value


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--log-interval", type=_seconds, default=60.0, metavar="SECONDS",
                        help="where stderr is not a terminal (nohup, a batch job): a progress line "
                             "every SECONDS within an epoch and one per epoch (0: epoch lines only; "
                             "default 60)")


def _add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``binlearn convert`` (their defaults are ConvertSettings'; a test checks)."""
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


def _cmd_train(args: argparse.Namespace) -> int:
    from binlearn.experiment import load_config, train
    from binlearn.experiment.config import ConfigError
    from binlearn.experiment.runner import resume_config

    if args.resume:
        if args.config or args.branch_from:
            raise ConfigError("give either CONFIG or --resume RUN_DIR, not both "
                              "(to continue a run under another config, use CONFIG --branch-from RUN_DIR)")
        if args.run_dir:
            raise ConfigError("--resume RUN_DIR continues RUN_DIR in place: drop --run-dir (a new directory "
                              "that starts from RUN_DIR is CONFIG --branch-from RUN_DIR --run-dir NEW)")
        overrides = [*args.set, *([f"data.data_dir={json.dumps(args.data_dir)}"] if args.data_dir else [])]
        config = resume_config(Path(args.resume), overrides)
        run_dir: Path | None = Path(args.resume)
    else:
        config = load_config(args.config, args.set)
        if args.data_dir:
            config.data.data_dir = args.data_dir
        run_dir = Path(args.run_dir) if args.run_dir else None
    branch_from = Path(args.branch_from) if args.branch_from else None
    summary = train(config, run_dir, resume=bool(args.resume), quiet=args.quiet,
                    runs_root=Path(args.runs_root), branch_from=branch_from,
                    log_interval=args.log_interval)
    if summary.get("world_size", 1) == 1 or _rank() == 0:
        _print_summary(summary, summary.get("run_dir"))
    return 0


def _print_summary(summary: dict, run_dir: str | None) -> None:
    """The summary on stdout; a stdout that cannot take it (a full disk, a closed pipe) is one
    line, the run being complete and its summary.json written."""
    try:
        print(json.dumps(summary, indent=2), flush=True)
    except BrokenPipeError:
        raise
    except OSError as error:
        kept = f"; the run finished and its summary is in {run_dir}/summary.json" if run_dir else ""
        raise WriteError(f"cannot print the summary on stdout ({error.strerror or error}){kept}") from None


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))


def _world_size() -> int:
    """How many processes torchrun started (1: not under torchrun)."""
    import os

    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def _cmd_eval(args: argparse.Namespace) -> int:
    from binlearn.artifacts import evaluate_run

    print(json.dumps(evaluate_run(Path(args.run_dir), split=args.split, quiet=args.quiet,
                                  overrides=args.set), indent=2))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from binlearn.experiment.compare import compare_runs

    labels = args.labels.split(",") if args.labels else None
    rows = compare_runs([Path(r) for r in args.run_dirs], Path(args.output) if args.output else None,
                        metric=args.metric, labels=labels, from_epoch=args.from_epoch)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(row["label"]) for row in rows)
    print(f"{'run':{width}s}  epochs  last {args.metric:<16s} best (epoch)       train s  branch of")
    for row in rows:
        parent = row["branched_from"]
        branch = f"{Path(parent['run_dir']).name} after {parent['after_epoch']}" if parent else ""
        print(f"{row['label']:{width}s}  {row['epochs']:6d}  {row['last_' + args.metric]:<21.4f} "
              f"{row['best_' + args.metric]:.4f} ({row['best_epoch']:3d})  "
              f"{row['train_seconds']:8.0f}  {branch}")
    for row in rows:
        if row["skipped_lines"]:
            lines = ", ".join(map(str, row["skipped_lines"]))
            print(f"{row['label']}: skipped unreadable metrics.jsonl line(s) {lines}")
    if args.output:
        print(f"plot: {args.output}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from binlearn.artifacts.export import export_run

    summary = export_run(Path(args.run_dir), Path(args.output) if args.output else None, fmt=args.format,
                         verify=not args.no_verify, quiet=args.quiet)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from binlearn.artifacts.spiking import ConvertSettings, convert_run

    settings = ConvertSettings(timesteps=args.timesteps, percentile=args.percentile, reset=args.reset,
                               one_step=args.one_step, init_half=args.init_half, encoding=args.encoding,
                               seed=args.seed, calibration_images=args.calibration_images,
                               batch_size=args.batch_size, device=args.device)
    record = convert_run(Path(args.run_dir), settings, Path(args.output) if args.output else None,
                         quiet=args.quiet, compare=[Path(p) for p in args.compare])
    keys = ("source_accuracy", "final_accuracy", "best_accuracy", "steps_to_within_1_point",
            "spikes_per_inference", "synaptic_ops_per_inference", "firing_rate_per_layer", "settings")
    printed = {k: record[k] for k in keys}
    if "accuracy_per_step" in record:
        printed["accuracy_per_step"] = [round(a, 4) for a in record["accuracy_per_step"]]
    memory = record.get("learning_memory")  # the total here; per layer in spiking.json
    printed["learning_memory"] = ({key: memory[key] for key in ("synapses", "bits", "bytes", "kib")}
                                  if isinstance(memory, dict) else record.get("learning_memory_note"))
    out = Path(args.output) if args.output else Path(args.run_dir)
    printed["written"] = [str(out / "spiking.json"), str(out / "latency.png")]
    print(json.dumps(printed, indent=2))
    return 0


def _cmd_infer(args: argparse.Namespace) -> int:
    from binlearn.artifacts.export import infer_export

    result = infer_export(Path(args.export), args.data, split=args.split, data_dir=args.data_dir,
                          output=Path(args.output) if args.output else None, quiet=args.quiet)
    print(json.dumps(result))
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from binlearn.experiment.config import ConfigError
    from binlearn.reproduce.reproduce import (
        format_claim_result,
        format_claims,
        format_list,
        format_result,
        list_claims,
        list_rows,
        reproduce,
        reproduce_claim,
    )
    from binlearn.reproduce.results import load_results, write_docs

    if sum([bool(args.list), bool(args.claims), bool(args.write_docs), args.row is not None]) != 1:
        raise ConfigError("give one of ROW (or CLAIM), --list, --claims or --write-docs "
                          "(binlearn reproduce --list shows the rows, --claims the claims)")
    if args.row is None and (args.quick or args.as_recorded or args.run_dir or args.set or args.data_dir):
        raise ConfigError("--quick, --as-recorded, --run-dir, --set and --data-dir apply to a ROW run "
                          "(all but --as-recorded to a CLAIM run too)")
    if args.write_docs and args.json:
        raise ConfigError("--json applies to a ROW or CLAIM run, --list and --claims, not to --write-docs")
    if args.list or args.claims:
        results = load_results(args.results)
        if args.claims:
            print(json.dumps(list_claims(results), indent=2) if args.json else format_claims(results))
        else:
            print(json.dumps(list_rows(results), indent=2) if args.json else format_list(results))
        return 0
    if args.write_docs:
        results = load_results(args.results)
        docs = results.path.parent
        if not (docs / "results.md").is_file():
            raise ConfigError(f"--write-docs renders {results.path}'s tables into the results.md beside it, "
                              f"and {docs / 'results.md'} does not exist")
        figures = docs / "figures"
        written = write_docs(results, docs / "results.md", figures / "overview.png", figures / "claims.png",
                             figures / "bits-per-synapse.png")
        for path in written:
            print(f"wrote {path}")
        return 0
    run_dir = Path(args.run_dir) if args.run_dir else None
    if load_results(args.results).claim(args.row) is not None:
        if args.as_recorded:
            raise ConfigError("--as-recorded applies to a ROW run: a CLAIM runs both arms at the claim's "
                              "settings (--quick: scaled down)")
        record = reproduce_claim(args.row, quick=args.quick, run_dir=run_dir, overrides=args.set,
                                 data_dir=args.data_dir, results_path=args.results, quiet=args.quiet)
        print(json.dumps(record, indent=2) if args.json else format_claim_result(record))
        return 0
    record = reproduce(args.row, quick=args.quick, as_recorded=args.as_recorded, run_dir=run_dir,
                       overrides=args.set, data_dir=args.data_dir, results_path=args.results,
                       quiet=args.quiet)
    print(json.dumps(record, indent=2) if args.json else format_result(record))
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from binlearn.data import SOURCES, DataError, dataset_status, ensure_files, resolve_data_dir

    names = args.names or list(SOURCES)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise DataError(f"unknown dataset {unknown[0]!r}; valid: {', '.join(SOURCES)}")
    root = resolve_data_dir(args.data_dir)
    if args.action == "list":
        print(f"data directory: {root}")
        for name in names:
            print(f"  {name:14s} {dataset_status(name, args.data_dir):10.60s}  {SOURCES[name].description}")
        return 0
    failures = []  # every dataset is tried; their failures make one error line
    for name in names:
        if not SOURCES[name].files:
            print(f"{name}: embedded (nothing to {args.action})")
            continue
        try:
            ensure_files(SOURCES[name], args.data_dir, download=args.action == "download",
                         quiet=args.quiet)
            print(f"{name}: ok ({root / name})")
        except DataError as error:
            failures.append(str(error) if str(error).startswith(f"{name}: ") else f"{name}: {error}")
    if failures:
        raise DataError("; ".join(failures))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``binlearn`` argument parser (the CLI reference page is generated from it)."""
    return _parser()


def _parser() -> argparse.ArgumentParser:
    from binlearn.version import __version__

    parser = argparse.ArgumentParser(prog="binlearn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"binlearn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train an experiment (no CONFIG: the digits quickstart)")
    _add_train_arguments(train)
    train.set_defaults(func=_cmd_train)

    evaluate = commands.add_parser("eval", help="evaluate a run's latest checkpoint")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--split", choices=["test", "train", "validation"], default="test")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="evaluate differently, not another model: rule.eval_steps (free "
                               "steps of the relaxation), data.eval_batch_size, train.device, "
                               "train.threads")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(func=_cmd_eval)

    compare = commands.add_parser("compare", help="several runs side by side: figures and one plot")
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    compare.add_argument("--metric", default="test_accuracy",
                         help="test_accuracy (default), validation_accuracy, train_accuracy or train_loss")
    compare.add_argument("--output", metavar="FILE.png",
                         help="plot the metric against epoch, one line per run")
    compare.add_argument("--from-epoch", type=int, default=1, metavar="N", help="plot epochs N.. only")
    compare.add_argument("--labels", metavar="A,B,...", help="names for the runs (default: directory names)")
    compare.add_argument("--json", action="store_true", help="print the figures as JSON")
    compare.set_defaults(func=_cmd_compare)

    export = commands.add_parser("export", help="export a run's latest checkpoint as a packed 1-bit model "
                                                "or (STE and local-binary runs, converted) as a NIR "
                                                "spiking network")
    export.add_argument("run_dir")
    export.add_argument("--format", default="packed",
                        help="packed (default): uint64 words, integer thresholds, manifest "
                             "(docs/packed-format.md); nir: the run converted to a reset-to-zero "
                             "spiking network as a NIR graph (docs/nir.md); every format: "
                             "experiment.export.EXPORT_FORMATS")
    export.add_argument("--output", metavar="FILE",
                        help="where to write it (default: RUN_DIR/model.packed.npz, RUN_DIR/model.nir)")
    export.add_argument("--no-verify", action="store_true",
                        help="skip checking that the packed model predicts as the run on its test set "
                             "(nir: that the file reads back as the same graph)")
    export.add_argument("--quiet", action="store_true")
    export.set_defaults(func=_cmd_export)

    convert = commands.add_parser("convert", help="convert an STE or local-binary run to a spiking network "
                                                  "and simulate it "
                                                  "(a binary EP run is read as the spiking network it is: "
                                                  "only --timesteps, --batch-size, --output apply)")
    _add_convert_arguments(convert)
    convert.set_defaults(func=_cmd_convert)

    infer = commands.add_parser("infer", help="run a packed model (packed kernels only) on a dataset split")
    infer.add_argument("export", metavar="EXPORT", help="a packed model file from `binlearn export`")
    infer.add_argument("--data", metavar="DATASET",
                       help="dataset name (default: the one the model was trained on)")
    infer.add_argument("--split", choices=["test", "train", "validation"], default="test")
    infer.add_argument("--data-dir", help="dataset folder (default: $BINLEARN_DATA, else the user cache)")
    infer.add_argument("--output", metavar="FILE", help="save the predictions as a .npy of int64 labels")
    infer.add_argument("--quiet", action="store_true")
    infer.set_defaults(func=_cmd_infer)

    reproduce = commands.add_parser("reproduce", help="the paper-table rows and claims: list them, or run "
                                                      "one and set its figure beside the paper's")
    reproduce.add_argument("row", nargs="?", metavar="ROW",
                           help="a row id, e.g. laydevant2021/fc-binary-weights, or a claim id, e.g. "
                                "laydevant2021/C1-fc (both arms, every seed; resumable with the same "
                                "--run-dir)")
    reproduce.add_argument("--list", action="store_true",
                           help="every row: paper, the paper's figure, our last measured one and its command")
    reproduce.add_argument("--claims", action="store_true",
                           help="every claim: each arm's test accuracy and the paired difference over the "
                                "seeds, the paper's difference and the verdict")
    reproduce.add_argument("--quick", action="store_true",
                           help="a scaled-down run that finishes in minutes (the output says what was cut)")
    reproduce.add_argument("--as-recorded", action="store_true",
                           help="the row's recorded overrides: the --set items of the run that measured "
                                "the recorded figure (default: the config as published)")
    reproduce.add_argument("--run-dir", help="where to write the run (default: runs/reproduce/ROW-TIME; a "
                                             "claim's runs: DIR/ARM-sSEED, default runs/claims/CLAIM-TIME)")
    reproduce.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                           help="override a config value after the row's (and --quick's) settings")
    reproduce.add_argument("--data-dir", help="dataset folder (default: $BINLEARN_DATA, else the user cache)")
    reproduce.add_argument("--results", metavar="FILE", help="the results file (default: docs/results.toml)")
    reproduce.add_argument("--write-docs", action="store_true",
                           help="render docs/results.md's tables, docs/figures/overview.png and "
                                "docs/figures/claims.png from the file")
    reproduce.add_argument("--json", action="store_true", help="print JSON")
    reproduce.add_argument("--quiet", action="store_true")
    reproduce.set_defaults(func=_cmd_reproduce)

    data = commands.add_parser("data", help="list, verify or download datasets")
    data.add_argument("action", choices=["list", "verify", "download"])
    data.add_argument("names", nargs="*", help="datasets (default: all)")
    data.add_argument("--data-dir", help="dataset folder (default: $BINLEARN_DATA, else the user cache)")
    data.add_argument("--quiet", action="store_true")
    data.set_defaults(func=_cmd_data)
    return parser


def _out_of_memory(error: BaseException) -> str | None:
    """One line for an allocation the machine could not satisfy (None: another error). The
    runner refuses models it can estimate as too big before building them; this catches the rest
    (activations, data, other processes' memory)."""
    import re

    import torch

    text = str(error)
    if not (isinstance(error, MemoryError | torch.OutOfMemoryError) or "can't allocate memory" in text):
        return None
    asked = re.search(r"allocate (\d+) bytes", text) or re.search(r"allocate ([\d.]+ [KMGT]iB)", text)
    size = ""
    if asked:
        value = asked.group(1)
        size = f" {int(value) / 2**30:,.1f} GiB" if value.isdigit() else f" {value}"
    more = f"{size} more" if size else " more memory"
    return (f"out of memory: the run tried to allocate{more} than is available "
            "(a smaller model, data.batch_size or data.eval_batch_size needs less)")


def _stopped(stop: KeyboardInterrupt, command: str) -> str:
    """One line: how the process stopped and, for a train, what its run directory keeps."""
    how = "terminated" if isinstance(stop, Terminated) else "interrupted"
    if how == "terminated" and _world_size() > 1:  # torchrun's agent stops the others when a rank ends
        how = "terminated (under torchrun: another rank was lost, or torchrun was stopped)"
    run_dir, epoch = getattr(stop, "run_dir", None), getattr(stop, "saved_epoch", None)
    if command != "train":
        return f"binlearn: {how}"
    if run_dir is None:
        return f"binlearn: {how} before training started; no run directory was written"
    if epoch is None:
        return (f"binlearn: {how} before the first checkpoint: {run_dir} holds no checkpoint "
                "(nothing to resume; start the run again)")
    return (f"binlearn: {how}; the checkpoint of epoch {epoch} is kept in {run_dir}: continue with "
            f"`binlearn train --resume {run_dir}`")


def _one_line_warnings(shown):
    """binlearn's own warnings (a skipped metrics line, a run at chance) as one
    ``binlearn: warning:`` line; the others as ``shown`` shows them."""
    from binlearn.errors import BinlearnWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, BinlearnWarning):
            print(f"binlearn: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    import os

    if sys.stderr is None:  # started with stderr closed (2>&-): progress and errors go nowhere
        sys.stderr = open(os.devnull, "w")  # kept open for the life of the process
    parser = _parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():  # restores the warning display on return
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, request_termination) if main_thread else None
    try:
        code = args.func(args)
        check()  # a SIGTERM that came during an import and found no later check
        return code
    except BinlearnError as error:  # every user error derives from it (binlearn.errors)
        print(f"binlearn: error: {error}", file=sys.stderr)
        return 2
    except (RuntimeError, MemoryError) as error:
        message = _out_of_memory(error)
        if message is None:
            raise  # a real bug: keep its traceback
        print(f"binlearn: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `binlearn ... | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as stop:
        print(_stopped(stop, args.command), file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        clear()  # a request belongs to this command (main() may be called again in one process)


if __name__ == "__main__":
    sys.exit(main())
