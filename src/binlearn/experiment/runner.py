"""The experiment runner: the only place that wires data + model + rule.

``train(config)`` writes a run directory::

    config.toml      the resolved configuration (every default filled in)
    meta.json        seed, binlearn/torch versions, git revision, device, world size, command,
                     learning_memory (bits of learning state per synapse, total bytes)
    metrics.jsonl    one JSON object per epoch
    checkpoint.pt    the latest epoch's learner state (atomic: written, then renamed)
    summary.json     final figures (test_accuracy, train_seconds, samples_per_second, ...,
                     learning_memory as in meta.json)
    curves.png       loss and accuracy against epoch

Reproducibility: torch's global generator is re-seeded from (seed, epoch) at the start of
every epoch and the shuffling generator likewise, so ``resume`` from the checkpoint of
epoch k replays epochs k+1.. exactly as an uninterrupted run does.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from binlearn.atomic import WriteError, atomic_write_text, write_json
from binlearn.data import Dataset, batch_indices, load_dataset, random_crop_flip
from binlearn.energy import DivergenceError
from binlearn.errors import BinlearnError
from binlearn.experiment import learners  # noqa: F401  (registers every learner)
from binlearn.experiment.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from binlearn.experiment.collapse import (
    CHANCE,
    CollapseWarning,
    TrainingCollapsed,
    at_chance,
    chance_level,
    collapse_message,
)
from binlearn.experiment.config import (
    RESUME_EPOCHS,
    RESUME_FREE,
    RESUME_REFUSED,
    RESUME_SCHEDULE,
    ConfigError,
    DataConfig,
    ExperimentConfig,
    ScheduleConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    read_config_file,
    resume_keys,
    resume_policy,
    to_toml,
    upgrade_old_layout,
)
from binlearn.experiment.distributed import AllReduce, Context, RankLost, setup, teardown
from binlearn.experiment.learner import Learner, LocalReducer, Reducer, learner_memory
from binlearn.experiment.loglines import DEFAULT_INTERVAL, ProgressLines
from binlearn.experiment.plots import plot_curves, pyplot
from binlearn.experiment.registry import build_learner, check_memory
from binlearn.experiment.rundir import (
    RUN_ARTEFACTS,
    RunError,
    check_enterable,
    check_run_dir,
    locked,
    make_run_dir,
    metrics_text,
    read_metrics,
    refuse_if_busy,
    remove_stale_temporaries,
)
from binlearn.stop import check as check_stop
from binlearn.version import __version__

__all__ = ["train", "evaluate", "load_run", "resolve_device", "TrainingDiverged", "RunError"]


class TrainingDiverged(BinlearnError, RuntimeError):
    """Training produced a non-finite value; the last good checkpoint is kept."""


def resolve_device(name: str, context: Context | None = None, *,
                   option: str = "train.device") -> torch.device:
    """``auto``: CUDA when available (one GPU per local rank), else CPU. ``option``: how the
    setting is named in the one-line error (``train.device``, or a command's ``--device``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and context is not None and context.world_size > 1:
        name = f"cuda:{context.local_rank}"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{option}={name!r}; valid: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option} asks for CUDA but no CUDA device is available; use auto or cpu")
    return device


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + stream) % (2**63)


def _divergence_errors() -> tuple[type[BaseException], ...]:
    return (TrainingDiverged, DivergenceError)


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _meta(config: ExperimentConfig, device: torch.device, context: Context) -> dict[str, Any]:
    return {
        "seed": config.seed, "binlearn_version": __version__,
        "torch_version": torch.__version__, "python": platform.python_version(),
        "git_revision": _git_revision(), "device": str(device), "world_size": context.world_size,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
        "command": sys.argv, "started": datetime.now().isoformat(timespec="seconds"),
    }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _commit_resume(run_dir: Path, config: ExperimentConfig, epoch: int,
                   changes: dict[str, list[Any]]) -> None:
    """Write a resumed run's config.toml and its meta.json entry, once the resumed run has
    written a checkpoint (or had nothing to train): a resume that fails before (it diverges, it
    is stopped) leaves config.toml as it was, so a plain ``--resume`` does not silently reuse
    the settings of the failed attempt."""
    atomic_write_text(run_dir / "config.toml", to_toml(config_to_dict(config)))
    _note_resume(run_dir / "meta.json", epoch, changes)


def _last_threads(path: Path) -> int | None:
    """The thread count the run last trained with (meta.json: the last resumption's, else the
    start's); None when meta.json does not say."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(meta, dict):
        return None
    resumed = meta.get("resumed")
    last = resumed[-1] if isinstance(resumed, list) and resumed and isinstance(resumed[-1], dict) else meta
    threads = last.get("threads")
    return threads if isinstance(threads, int) and not isinstance(threads, bool) else None


def _note_resume(path: Path, epoch: int, changes: dict[str, list[Any]]) -> None:
    """Append this resumption (epoch, config changes, threads, command, time, revision) to
    meta.json's ``resumed``."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    meta.setdefault("resumed", []).append({
        "after_epoch": epoch, "changes": changes, "threads": torch.get_num_threads(),
        "command": sys.argv, "git_revision": _git_revision(),
        "started": datetime.now().isoformat(timespec="seconds")})
    write_json(path, meta)


@torch.no_grad()
def evaluate(learner: Learner, x: torch.Tensor, y: torch.Tensor, batch_size: int,
             context: Context | None = None, reducer: Reducer | None = None) -> float | None:
    """Accuracy of ``learner.predict`` on (x, y), sharded over ranks. None for an empty split."""
    context, reducer = context or Context(), reducer or LocalReducer()
    if len(x) == 0:
        return None
    shard = torch.tensor_split(torch.arange(len(x)), context.world_size)[context.rank]
    correct = torch.zeros((), dtype=torch.float64)
    for start in range(0, len(shard), batch_size):
        idx = shard[start:start + batch_size].to(x.device)
        correct += (learner.predict(x[idx]) == y[idx]).sum().cpu().double()
    return float(reducer.sum(correct)) / len(x)


def _default_run_dir(config: ExperimentConfig, root: Path) -> Path:
    """``root/NAME-TIME``; a ``name`` that is not one plain directory name is refused (a name
    with ``../`` would write outside ``root``)."""
    name = config.name
    if name is not None and (name in ("", ".", "..") or any(sep and sep in name for sep in
                                                             (os.sep, os.altsep, "/"))):
        raise ConfigError(f"name = {name!r} names the run directory and must be a plain name, without "
                          "path separators; to write elsewhere give --run-dir or --runs-root")
    stem = name or f"{config.data.dataset}-{config_to_dict(config)['rule']['name']}"
    return root / f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _first_lines(error: BaseException, limit: int = 240) -> str:
    """An exception's message on one line (torch's state-dict errors span several)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_learner_state(learner: Learner, checkpoint: dict[str, Any], run_dir: Path,
                       mismatch: str = "does not match its config.toml") -> None:
    """Load ``checkpoint``'s learner state; a model that does not fit it is one CheckpointError
    line naming ``run_dir`` and the first differences torch reports."""
    try:
        learner.load_state_dict(checkpoint["learner"])
    except (KeyError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{run_dir}/checkpoint.pt {mismatch} ({_first_lines(error)})") from None


def _write_metrics(path: Path, kept: list[str], records: list[dict[str, Any]]) -> None:
    atomic_write_text(path, metrics_text(kept, records))


RUN_CHECKPOINT_KEYS = ("epoch", "learner", "train_seconds", "samples_seen")
"""What the runner's checkpoint.pt holds besides its format (and ``config``, the config the
checkpointed epochs ran under)."""


def load_run(run_dir: Path, check: Callable[[ExperimentConfig], None] | None = None
             ) -> tuple[ExperimentConfig, dict[str, Any]]:
    """The config and latest checkpoint of a run directory (one-line errors when unusable).

    ``check``: called with the typed config before the checkpoint is read (e.g. to refuse a
    run that cannot become the artefact asked for, before any heavy reading)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run directory not found: {run_dir}")
    check_enterable(run_dir)
    if not (run_dir / "config.toml").is_file():
        raise RunError(f"{run_dir} is not a binlearn run directory (no config.toml)")
    config = config_from_dict(read_config_file(run_dir / "config.toml"))
    if check is not None:
        check(config)
    if not (run_dir / "checkpoint.pt").is_file():
        raise RunError(f"{run_dir} has no checkpoint.pt yet (it stopped before its first epoch ended)")
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    missing = [key for key in RUN_CHECKPOINT_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{run_dir}/checkpoint.pt is a torch file but not a binlearn run's checkpoint "
                              f"(it has no {', '.join(missing)})")
    return config, checkpoint


FREE_ON_RESUME = tuple(resume_keys(ExperimentConfig(data=DataConfig(), train=TrainConfig()), RESUME_FREE,
                                  ("", "train", "data")))
"""The top-level, [train] and [data] keys declared ``resume=RESUME_FREE``: where and how a run is
computed or stored, not what it learns (a resume may change them, recorded in meta.json; so
may any ``eval_steps``, declared free on its rule's config)."""

_MISSING = object()


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> dict[str, list[Any]]:
    """Every value that differs between two config tables, section by section, as
    ``{"section.key": [old, new]}`` (None for a key one side does not have)."""
    changes: dict[str, list[Any]] = {}
    for key in [*old, *(k for k in new if k not in old)]:
        before, after = old.get(key, _MISSING), new.get(key, _MISSING)
        if isinstance(before, dict) and isinstance(after, dict):
            changes.update(config_changes(before, after, f"{prefix}{key}."))
        elif before != after:
            changes[f"{prefix}{key}"] = [None if v is _MISSING else v for v in (before, after)]
    return changes


def _schedule_is_constant_until(table: dict[str, Any], epoch: int) -> bool:
    schedule = ScheduleConfig(**table["schedule"])
    return schedule.constant() or schedule.decay_start >= epoch


def check_resume(saved: dict[str, Any], config: ExperimentConfig, done: int) -> dict[str, list[Any]]:
    """The changes from ``saved`` (the checkpoint's config, epoch ``done``) to ``config`` that a
    resume may make; a ConfigError (one line) for the first that would change the run.

    What may change is declared with each field (``setting(resume=...)``,
    :func:`~binlearn.experiment.config.resume_policy`): ``train.*`` but ``shuffle``
    (``train.epochs`` >= ``done``), where the data lives and how it is evaluated
    (:data:`FREE_ON_RESUME`, any ``eval_steps``), the optimizer settings but ``name``
    (``RESUME_NEXT_EPOCH``: trained on from now; the learner loads the saved optimizer state
    under the config's settings), and for runs with an optimizer the schedule
    (``RESUME_SCHEDULE``) when it stays constant over the epochs already trained (the old one
    was, and the new ``schedule.decay_start`` is at least ``done``): e.g. anneal a plateaued run now. Anything
    else — the seed, the model, the data, the estimator, the optimizer's kind, the shuffling —
    would make the run directory describe a run that never happened: train a branch instead.
    ``saved`` may be in the old layout (a checkpoint written before [optimizer] / [schedule]).
    """
    saved_config = config_from_dict(upgrade_old_layout(saved)[0])  # both through today's loader
    old, new = config_to_dict(saved_config), config_to_dict(config)
    changes = config_changes(old, new)
    kinds = {key: resume_policy(key, config, saved_config) for key in changes}
    for key, (before, after) in changes.items():
        kind = kinds[key]
        if kind == RESUME_REFUSED:
            raise ConfigError(f"--resume cannot change {key!r} (the checkpoint's {before!r}, now {after!r}): "
                              "it would change the run; train a branch instead (binlearn train CONFIG "
                              "--branch-from RUN_DIR --run-dir NEW)")
        if kind == RESUME_EPOCHS and not after >= done:
            raise ConfigError(f"--resume asks for train.epochs = {after}, but {done} epochs are trained "
                              f"already: give train.epochs >= {done}")
    schedule = [key for key in changes if kinds[key] == RESUME_SCHEDULE]
    if schedule and not (_schedule_is_constant_until(old, done) and new["schedule"]["decay_start"] >= done):
        raise ConfigError(f"a schedule set on --resume must leave the {done} epochs already trained "
                          f"unchanged: set schedule.decay_start >= {done} (the run's schedule must also "
                          f"have been constant until then)")
    return changes


def saved_config(run_dir: Path, config: ExperimentConfig, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The config the checkpointed epochs ran under, to check a resume against: the one stored
    in the checkpoint; a checkpoint of an older binlearn stored none, so then ``config`` (the run
    directory's config.toml, which a hand edit may have changed) with the seed meta.json recorded
    when the run started (a seed edited into config.toml is still refused: it cannot change within
    a run)."""
    if "config" in checkpoint:
        return checkpoint["config"]
    table = config_to_dict(config)
    try:
        meta = json.loads((Path(run_dir) / "meta.json").read_text())
    except (OSError, ValueError, RecursionError):
        return table
    seed = meta.get("seed") if isinstance(meta, dict) else None
    if isinstance(seed, int) and not isinstance(seed, bool):
        table["seed"] = seed
    return table


def resume_config(run_dir: Path, overrides: list[str]) -> ExperimentConfig:
    """The config to continue ``run_dir`` with: its config.toml (hand edits included), with
    ``overrides`` applied, checked against the checkpoint's own config (:func:`check_resume`).
    A run file that is there but not a regular file (a directory named metrics.jsonl, say) is
    one line before anything is written."""
    config, checkpoint = load_run(run_dir)
    for name in RUN_ARTEFACTS:  # the files a resumed run reads or replaces
        path = Path(run_dir) / name
        if path.exists() and not path.is_file():
            raise RunError(f"{path} is not a file (a directory?): the run directory is damaged; move "
                           f"{name} away to resume the run")
    new = config_from_dict(apply_overrides(config_to_dict(config), overrides))
    check_resume(saved_config(run_dir, config, checkpoint), new, int(checkpoint["epoch"]))
    return new


def _describe(changes: dict[str, list[Any]]) -> str:
    return ", ".join(f"{key} {before!r} → {after!r}" for key, (before, after) in changes.items())


@dataclass
class _EpochStats:
    loss: float
    correct: float
    samples: float
    seconds: float


def _train_epoch(learner: Learner, data: Dataset, config: ExperimentConfig, epoch: int,
                 context: Context, reducer: Reducer, quiet: bool, lines: ProgressLines) -> _EpochStats:
    torch.manual_seed(_epoch_seed(config.seed, epoch, 0))
    generator = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch, 1))
    batches = list(batch_indices(len(data.x_train), config.data.batch_size, generator=generator,
                                 shuffle=config.train.shuffle, rank=context.rank,
                                 world_size=context.world_size))
    totals = torch.zeros(3, dtype=torch.float64)  # loss, correct, samples
    total = sum(len(idx) for idx in batches)
    start = time.perf_counter()
    lines.start_epoch()
    bar = tqdm(batches, desc=f"epoch {epoch}/{config.train.epochs}", unit="batch", leave=False,
               disable=True if quiet or not context.is_main else None)
    for step, idx in enumerate(bar, 1):
        check_stop()  # a SIGTERM whose exception Python swallowed still stops here (binlearn.stop)
        idx = idx.to(data.x_train.device)
        x, y = data.x_train[idx], data.y_train[idx]
        if config.data.augment:
            x = random_crop_flip(x, generator, config.data.augment_padding, config.data.augment_flip)
        stats = learner.train_step(x, y, reducer)
        if not math.isfinite(stats["loss"]):
            raise TrainingDiverged(f"non-finite training loss at epoch {epoch}, step {step}")
        totals += torch.tensor([stats["loss"], stats["correct"], len(y)], dtype=torch.float64)
        if context.is_main and step % 10 == 0:
            bar.set_postfix(acc=f"{totals[1] / totals[2]:.3f}")
        lines.batch(epoch, config.train.epochs, int(totals[2]), total, float(totals[1]), context.world_size)
    seconds = time.perf_counter() - start
    totals = reducer.sum(totals)
    return _EpochStats(float(totals[0]), float(totals[1]), float(totals[2]), seconds)


def _check_augment(config: ExperimentConfig, sample_shape: tuple[int, ...]) -> None:
    """Random shifts need images: refuse flat samples and shifts as large as the image."""
    if not config.data.augment:
        return
    height, width = sample_shape[-2:]
    if min(height, width) <= 1:
        raise ConfigError(f"data.augment shifts images, but the samples are {list(sample_shape)} (flat "
                          "features); set data.augment = false")
    if config.data.augment_padding >= min(height, width):
        raise ConfigError(f"data.augment_padding = {config.data.augment_padding} can shift a "
                          f"{height}×{width} image entirely out of view; use less than {min(height, width)}")


def _check_finite(state: Any, epoch: int, path: str = "") -> None:
    """Refuse to checkpoint a learner whose parameters or buffers hold NaN/inf."""
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and not bool(torch.isfinite(state).all()):
            raise TrainingDiverged(f"the learner's state {path or 'tensor'} holds NaN/inf "
                                   f"after epoch {epoch}")
    elif isinstance(state, dict):
        for key, value in state.items():
            _check_finite(value, epoch, f"{path}/{key}" if path else str(key))
    elif isinstance(state, list | tuple):
        for index, value in enumerate(state):
            _check_finite(value, epoch, f"{path}/{index}")


def train(config: ExperimentConfig, run_dir: Path | None = None, *, resume: bool = False,
          quiet: bool = False, runs_root: Path = Path("runs"),
          branch_from: Path | None = None, log_interval: float = DEFAULT_INTERVAL) -> dict[str, Any]:
    """Train ``config`` end to end (or continue ``run_dir`` when ``resume``); return the summary.

    ``branch_from``: a run directory whose latest checkpoint (epoch K: weights, optimizer state,
    epoch count) this new run starts from; it trains epochs K+1.. under ``config`` (e.g. with
    data augmentation switched on) and leaves ``branch_from`` untouched. Its metrics.jsonl
    starts with the parent's first K records and meta.json's ``branched_from`` names the parent,
    its config and K, so the directory says which epochs ran under which config.

    ``log_interval``: where stderr is not a terminal (no progress bars), a plain progress line
    every that many seconds within an epoch, and one per finished epoch (0: epoch lines only;
    none at all when ``quiet``).
    """
    if resume and branch_from is not None:
        raise ConfigError("give either --resume or --branch-from, not both")
    context = setup("cuda" if config.train.device.startswith("cuda") or
                    (config.train.device == "auto" and torch.cuda.is_available()) else "cpu",
                    config.train.dist_timeout)
    progress = _Progress()
    clean = False
    try:
        try:
            summary = _train(config, run_dir, resume=resume, quiet=quiet, runs_root=runs_root,
                             context=context, branch_from=branch_from, progress=progress,
                             log_interval=log_interval)
            clean = True
            return summary
        except RankLost as lost:
            raise RankLost(f"{lost}; {progress.kept()}") from None
        finally:
            teardown(context, clean=clean)
    except KeyboardInterrupt as stop:  # the CLI says what is kept where (torchrun's SIGTERM may come
        # while a lost rank is being reported, hence around the teardown too)
        stop.run_dir, stop.saved_epoch = progress.run_dir, progress.saved_epoch  # type: ignore[attr-defined]
        raise


@dataclass
class _Progress:
    """What a stopped train leaves: its run directory (once it exists) and the epoch of the
    directory's latest checkpoint (None: none yet)."""

    run_dir: Path | None = None
    saved_epoch: int | None = None

    def kept(self) -> str:
        """What the run directory holds now, and how to go on, for a one-line error."""
        if self.run_dir is None:
            return "no run directory was written"
        if self.saved_epoch is None:
            return f"{self.run_dir} holds no checkpoint yet (nothing to resume; start the run again)"
        return (f"the checkpoint of epoch {self.saved_epoch} is kept in {self.run_dir}: continue with "
                f"`binlearn train --resume {self.run_dir}` (under torchrun or alone)")


def _train(config: ExperimentConfig, run_dir: Path | None, *, resume: bool, quiet: bool,
           runs_root: Path, context: Context, branch_from: Path | None = None,
           progress: _Progress | None = None, log_interval: float = DEFAULT_INTERVAL) -> dict[str, Any]:
    progress = progress or _Progress()
    device = resolve_device(config.train.device, context)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    reducer: Reducer = AllReduce(context.world_size) if context.world_size > 1 else LocalReducer()

    checkpoint = parent = None
    if run_dir is not None and Path(run_dir).is_dir():
        refuse_if_busy(Path(run_dir))
    changes: dict[str, list[Any]] = {}
    loaded = None  # the checkpoint file a resume read
    if resume:
        assert run_dir is not None
        on_file, checkpoint = load_run(run_dir)
        loaded = _stamp(Path(run_dir) / "checkpoint.pt")
        progress.run_dir, progress.saved_epoch = Path(run_dir), int(checkpoint["epoch"])
        changes = check_resume(saved_config(run_dir, on_file, checkpoint), config, int(checkpoint["epoch"]))
    elif branch_from is not None:
        parent, checkpoint = load_run(branch_from)
        if config.train.epochs <= checkpoint["epoch"]:
            raise ConfigError(f"{branch_from} has trained {checkpoint['epoch']} epochs: a branch of it "
                              f"needs train.epochs > {checkpoint['epoch']} (the total, parent's included)")
    if not resume:  # a new run directory (a resumed one is continued in place)
        if run_dir is None:
            from binlearn.experiment.distributed import broadcast_object

            run_dir = Path(broadcast_object(str(_default_run_dir(config, Path(runs_root))), context))
        _refuse_a_run(Path(run_dir))
        check_run_dir(Path(run_dir))
        if parent is not None:
            changes = config_changes(config_to_dict(parent), config_to_dict(config))
    assert run_dir is not None  # given, resumed or just chosen
    run_dir = Path(run_dir)
    if config.data.features and not resume:  # the run must not depend on today's directory
        config.data.features = str(Path(config.data.features).expanduser().resolve())

    data = load_dataset(config.data, quiet=quiet or not context.is_main).to(device)
    _check_augment(config, data.input_shape)
    check_memory(config, data.input_shape, data.num_classes, device)
    torch.manual_seed(config.seed)
    learner = build_learner(config, data.input_shape, data.num_classes, device)
    if checkpoint is not None:
        load_learner_state(learner, checkpoint, Path(branch_from) if branch_from is not None else run_dir,
                           "does not fit this config's model")
    if not context.is_main:  # only rank 0 writes, so only rank 0 holds the directory
        progress.run_dir = run_dir
        return _run(config, run_dir, learner, data, checkpoint, parent, resume=resume, quiet=quiet,
                    context=context, reducer=reducer, device=device, branch_from=branch_from,
                    changes=changes, progress=progress, log_interval=log_interval)
    make_run_dir(run_dir)
    progress.run_dir = run_dir
    with locked(run_dir):
        if not resume:  # another process may have finished a run here since the check above
            _refuse_a_run(run_dir)
        elif _stamp(run_dir / "checkpoint.pt") != loaded:  # another resume ran while this one started
            raise RunError(f"{run_dir}/checkpoint.pt changed while this process was starting (another "
                           "train of the directory ran meanwhile); run the command again")
        remove_stale_temporaries(run_dir)
        return _run(config, run_dir, learner, data, checkpoint, parent, resume=resume, quiet=quiet,
                    context=context, reducer=reducer, device=device, branch_from=branch_from,
                    changes=changes, progress=progress, log_interval=log_interval)


def _stamp(path: Path) -> tuple[int, int]:
    """What tells one version of a file from the next (it is replaced by rename)."""
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def _refuse_a_run(run_dir: Path) -> None:
    if (run_dir / "checkpoint.pt").exists():
        raise RunError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                       "or choose another --run-dir")


def _report_collapse(config: ExperimentConfig, epoch: int, accuracy: float, chance: float,
                     samples: float, context: Context, saved_epoch: int | None, run_dir: Path) -> None:
    """An epoch at chance: one warning line (rank 0), and with ``train.stop_on_collapse`` the
    run stops (every rank: the statistics are reduced, so all agree) after its checkpoint."""
    message = collapse_message(epoch, accuracy, chance, samples, config)
    if not config.train.stop_on_collapse:
        if context.is_main:
            warnings.warn(message, CollapseWarning, stacklevel=2)
        return
    kept = (f"the checkpoint of epoch {saved_epoch} is kept in {run_dir}" if saved_epoch is not None
            else "no checkpoint was written")
    raise TrainingCollapsed(f"stopped (train.stop_on_collapse): {message}; {kept}")


def _run(config: ExperimentConfig, run_dir: Path, learner: Learner, data: Dataset,
         checkpoint: dict[str, Any] | None, parent: ExperimentConfig | None, *, resume: bool,
         quiet: bool, context: Context, reducer: Reducer, device: torch.device,
         branch_from: Path | None, changes: dict[str, list[Any]], progress: _Progress,
         log_interval: float = DEFAULT_INTERVAL) -> dict[str, Any]:
    """Write the run directory and train its remaining epochs (rank 0 holds its lock)."""
    start_epoch, train_seconds, samples_seen = 1, 0.0, 0.0
    memory = learner_memory(learner)
    pending_resume: tuple[int, dict[str, list[Any]]] | None = None
    kept: list[str] = []  # metrics.jsonl lines of the epochs before this process, kept verbatim
    records: list[dict[str, Any]] = []
    if checkpoint is not None:
        start_epoch = checkpoint["epoch"] + 1
        train_seconds, samples_seen = checkpoint["train_seconds"], checkpoint["samples_seen"]
    if resume:
        assert checkpoint is not None
        log = read_metrics(run_dir / "metrics.jsonl", checkpoint["epoch"])
        kept, records = log.kept, log.records
        if context.is_main:  # the directory describes the run as continued (epochs, schedule)
            before = _last_threads(run_dir / "meta.json")
            if before is not None and before != torch.get_num_threads():
                print(f"binlearn: note: {run_dir} last trained on {_count(before, 'thread')}, this resume "
                      f"on {torch.get_num_threads()}: float sums run in another order, so from here the run "
                      "differs from an uninterrupted one in the last bits (--set train.threads="
                      f"{before} keeps it identical)", file=sys.stderr)
            pending_resume = (int(checkpoint["epoch"]), changes)  # written with the first checkpoint
            if changes:
                print(f"binlearn: resuming {run_dir} after epoch {checkpoint['epoch']} with "
                      f"{_describe(changes)} (recorded in meta.json)", file=sys.stderr)
    else:
        meta = _meta(config, device, context)
        if memory is not None:
            meta["learning_memory"] = memory
        if parent is not None:  # a branch: the parent's first K records, and who the parent is
            assert branch_from is not None and checkpoint is not None
            log = read_metrics(Path(branch_from) / "metrics.jsonl", checkpoint["epoch"])
            kept, records = log.kept, log.records
            meta["branched_from"] = {"run_dir": str(Path(branch_from).resolve()),
                                     "after_epoch": int(checkpoint["epoch"]),
                                     "config": config_to_dict(parent), "changes": changes}
        if context.is_main:
            atomic_write_text(run_dir / "config.toml", to_toml(config_to_dict(config)))
            write_json(run_dir / "meta.json", meta)
            if kept:
                _write_metrics(run_dir / "metrics.jsonl", kept, [])

    title = f"{run_dir.name}: {config.data.dataset}"
    epochs = config.train.epochs
    if context.is_main:  # load matplotlib before the first epoch, not at its plot
        pyplot()
    new: list[dict[str, Any]] = []  # this process's records
    chance = chance_level(data.y_train)
    lines = ProgressLines.for_stderr(quiet or not context.is_main, log_interval)
    epoch_bar = tqdm(range(start_epoch, epochs + 1), desc="training", unit="epoch",
                     disable=True if quiet or not context.is_main else None)
    for epoch in epoch_bar:
        last = epoch == epochs
        try:
            check_stop()
            stats = _train_epoch(learner, data, config, epoch, context, reducer, quiet, lines)
            train_accuracy = stats.correct / max(stats.samples, 1)
            extra = learner.end_epoch(epoch, train_accuracy, reducer) or {}
            record: dict[str, Any] = {
                "epoch": epoch, "train_loss": stats.loss / max(stats.samples, 1),
                "train_accuracy": train_accuracy, "epoch_seconds": stats.seconds,
            }
            if last or epoch % config.train.eval_every == 0:
                batch = config.data.eval_batch_size
                record["validation_accuracy"] = evaluate(learner, data.x_val, data.y_val, batch,
                                                         context, reducer)
                record["test_accuracy"] = evaluate(learner, data.x_test, data.y_test, batch,
                                                   context, reducer)
            state = learner.state_dict()
            _check_finite(state, epoch)
            collapsed = at_chance(train_accuracy, chance, stats.samples)
            if collapsed:
                record["warnings"] = [CHANCE]
        except _divergence_errors() as error:
            message = f"training diverged: {error}"
            if context.is_main and progress.saved_epoch is not None:
                message += f"; the last good checkpoint (epoch {progress.saved_epoch}) is kept in {run_dir}"
            elif context.is_main:
                message += "; no checkpoint was written"
            raise TrainingDiverged(message) from None
        train_seconds += stats.seconds
        samples_seen += stats.samples
        record.update(extra)
        records.append(record)
        new.append(record)
        epoch_bar.set_postfix(train=f"{train_accuracy:.3f}",
                              test=f"{record.get('test_accuracy') or float('nan'):.3f}")
        if context.is_main:
            _write_metrics(run_dir / "metrics.jsonl", kept, new)
            if last or epoch % config.train.checkpoint_every == 0:
                try:
                    save_checkpoint(run_dir / "checkpoint.pt", {
                        "epoch": epoch, "learner": state, "config": config_to_dict(config),
                        "train_seconds": train_seconds, "samples_seen": samples_seen,
                    })
                except WriteError as error:  # a full disk: say what the run directory still holds
                    kept_epoch = progress.saved_epoch if progress.saved_epoch is not None else start_epoch - 1
                    held = (f"the checkpoint of epoch {kept_epoch} is kept; free space, then "
                            f"`binlearn train --resume {run_dir}`") if kept_epoch else "no checkpoint is kept"
                    raise WriteError(f"epoch {epoch}: {str(error).split('; ')[0]}; {held}") from None
                progress.saved_epoch = epoch
                if pending_resume is not None:  # a checkpoint of the resumed run: config.toml follows
                    _commit_resume(run_dir, config, *pending_resume)
                    pending_resume = None
            plot_curves(records, run_dir / "curves.png", title)
            lines.end_epoch(epoch, epochs, record, saved=progress.saved_epoch == epoch)
        elif last or epoch % config.train.checkpoint_every == 0:
            progress.saved_epoch = epoch  # rank 0 wrote it (had it failed, the next collective would)
        if collapsed:
            _report_collapse(config, epoch, train_accuracy, chance, stats.samples, context,
                             progress.saved_epoch, run_dir)
    epoch_bar.close()
    if context.is_main and pending_resume is not None:  # no epoch left to train: only the config changed
        _commit_resume(run_dir, config, *pending_resume)

    final = records[-1] if records else {}
    summary = {
        "dataset": config.data.dataset, "train_size": len(data.x_train),
        "test_size": len(data.x_test), "seed": config.seed, "epochs": epochs,
        "test_accuracy": final.get("test_accuracy"),
        "validation_accuracy": final.get("validation_accuracy"),
        "train_accuracy": final.get("train_accuracy"), "train_seconds": train_seconds,
        "samples_per_second": samples_seen / train_seconds if train_seconds else None,
        "world_size": context.world_size, "device": str(device), "run_dir": str(run_dir),
    }
    if memory is not None:
        summary["learning_memory"] = memory
    if context.is_main:
        write_json(run_dir / "summary.json", summary)
    return summary
