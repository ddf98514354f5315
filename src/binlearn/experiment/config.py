"""Typed experiment configuration: dataclasses loaded from TOML, with validated overrides.

An experiment file has up to six sections plus two top-level keys::

    name = "mnist-ste-binary"     # optional, used for the run directory
    seed = 0
    [data]       -> DataConfig
    [model]      -> the dataclass registered for model.kind (e.g. "mlp", "energy")
    [rule]       -> the dataclass registered for rule.name (e.g. "ste", "ep", "local_binary"):
                    the estimator (what is computed from a batch)
    [optimizer]  -> the optimizer dataclass registered with that rule (rules with an optimizer:
                    ep, bptt, ste): what turns the estimate into a parameter update
    [schedule]   -> ScheduleConfig (same rules): how the optimizer's rates change over epochs
    [train]      -> TrainConfig

Every key is checked: an unknown key or a value of the wrong type raises
:class:`ConfigError` with a message that lists the valid keys (the CLI prints it as one
line, never a traceback). Value bounds are declared once, with each field
(:func:`setting`), and checked by one validator (:func:`validate`) when a section is
built. Files written before [optimizer] and [schedule] existed (their keys under [rule])
are read through :data:`OLD_RULE_KEYS`, with one line saying so.
``--set section.key=value`` overrides parse ``value`` as TOML
(``--set train.epochs=3``, ``--set model.hidden=[512,512]``, ``--set data.dataset=mnist``),
falling back to a bare string.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import sys
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from binlearn.data.encodings import ENCODINGS, check_thermometer_levels
from binlearn.data.features import NPY_DATASET
from binlearn.data.sources import SOURCES
from binlearn.errors import BinlearnError

__all__ = [
    "ConfigError",
    "DEVICE_PATTERN",
    "Bounds",
    "setting",
    "validate",
    "Settings",
    "ScheduleConfig",
    "OLD_RULE_KEYS",
    "upgrade_old_layout",
    "eval_keys",
    "RESUME_REFUSED",
    "RESUME_FREE",
    "RESUME_NEXT_EPOCH",
    "RESUME_SCHEDULE",
    "RESUME_EPOCHS",
    "RESUME_POLICIES",
    "resume_policy",
    "resume_keys",
    "section_keys",
    "DataConfig",
    "TrainConfig",
    "ExperimentConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "dataclass_from_dict",
    "register_model_config",
    "register_rule_config",
    "MODEL_CONFIGS",
    "to_toml",
    "read_toml",
    "RULE_CONFIGS",
]


class ConfigError(BinlearnError, ValueError):
    """A configuration problem, explained in one line for the user."""


# --------------------------------------------------------------------------- bounds
MAX_EPOCHS = 1_000_000
"""Upper bound of every epoch count (epochs, cosine_epochs, decay_start): beyond it a run
would never end, and huge integers overflow torch's generators."""

FLOAT32_MAX = 3.4028234663852886e38
"""The largest finite float32: every float setting ends up in float32 tensors, so a larger one
is refused where it is read, not met as inf (or a traceback) mid-run."""

_INT_LIMIT = 2**63
"""Integers must fit an int64 (torch, numpy): anything larger is refused, never wrapped."""


@dataclass(frozen=True)
class Bounds:
    """The values a config field accepts, declared once with the field (see :func:`setting`).

    Numbers: ``ge`` ≤ x, ``gt`` < x, x ≤ ``le``, x < ``lt``; floats must be finite (TOML
    allows nan and inf). Strings: one of ``choices``, or matching ``pattern`` (described as
    ``pattern_help``). Lists: every item is checked, and ``nonempty`` refuses ``[]``.
    None (an optional field left unset) is always accepted.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    pattern_help: str = ""
    nonempty: bool = False

    def numeric(self) -> bool:
        return any(b is not None for b in (self.ge, self.gt, self.le, self.lt))

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of bounds (a phrase such as "must be >= 1, got 0"), or None."""
        if value is None:
            return None
        if isinstance(value, list | tuple):
            if self.nonempty and not value:
                return "must not be empty"
            for item in value:
                problem = self.problem(item) if isinstance(item, list | tuple) else self._item_problem(item)
                if problem:
                    return f"{problem.split(', got')[0]} (every value), got {list(value)}"
            return None
        return self._item_problem(value)

    def _item_problem(self, value: Any) -> str | None:
        if isinstance(value, str):
            if self.choices is not None and value not in self.choices:
                return f"must be one of {', '.join(map(repr, self.choices))}" + (
                    " or a number" if self.numeric() else "") + f", got {value!r}"
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                return f"must be {self.pattern_help}, got {value!r}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None  # types are checked before bounds (_coerce)
        if isinstance(value, int) and not -_INT_LIMIT < value < _INT_LIMIT:
            return f"is too large (integers must fit in 64 bits), got {value}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        if isinstance(value, float) and abs(value) > FLOAT32_MAX:
            return (f"is too large for the float32 arithmetic it enters (|x| <= {FLOAT32_MAX:.4g}), "
                    f"got {value:g}")
        for bound, ok, text in ((self.ge, lambda b: value >= b, ">="), (self.gt, lambda b: value > b, ">"),
                                (self.le, lambda b: value <= b, "<="), (self.lt, lambda b: value < b, "<")):
            if bound is not None and not ok(bound):
                return f"must be {text} {bound:g}, got {value}"
        return None


RESUME_REFUSED = "refused"
"""The key says what the run learns (the default): ``--resume`` refuses to change it."""
RESUME_FREE = "free"
"""The key says where and how the run is computed, stored or evaluated, not what it learns:
``--resume`` may change it (recorded in meta.json)."""
RESUME_NEXT_EPOCH = "next_epoch"
"""An optimizer setting: ``--resume`` may change it; the run trains on with the new value from
the next epoch (the saved optimizer state is loaded under it)."""
RESUME_SCHEDULE = "schedule"
"""A [schedule] key: ``--resume`` may change it when the epochs already trained stay as they
ran (the runner checks that the old and the new schedule were constant over them)."""
RESUME_EPOCHS = "epochs"
"""The epoch count: ``--resume`` may raise it, never below the epochs already trained."""
RESUME_POLICIES = (RESUME_REFUSED, RESUME_FREE, RESUME_NEXT_EPOCH, RESUME_SCHEDULE, RESUME_EPOCHS)


def setting(default: Any = dataclasses.MISSING, *, factory: Callable[[], Any] | None = None,
            evaluation: bool = False, resume: str = RESUME_REFUSED, **bounds: Any) -> Any:
    """A config field with its bounds (the keyword arguments of :class:`Bounds`).

    ``evaluation``: the key changes how a trained model is run, never what it is, so
    ``binlearn eval --set`` may change it (:func:`eval_keys`).
    ``resume``: what ``binlearn train --resume`` may do with the key, one of
    :data:`RESUME_POLICIES` (:func:`resume_policy`); an ``evaluation`` key is free on resume.
    """
    if resume not in RESUME_POLICIES:
        raise ValueError(f"resume={resume!r}; valid: {', '.join(RESUME_POLICIES)}")
    if evaluation:
        resume = RESUME_FREE
    if bounds.get("choices") is not None:
        bounds["choices"] = tuple(bounds["choices"])
    metadata = {"bounds": Bounds(**bounds), "evaluation": evaluation, "resume": resume}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def validate(obj: Any, where: str) -> None:
    """The one validator: every field's declared :class:`Bounds`, then the section's own
    relations between its fields (its ``check()`` method, if any). Raises ConfigError
    naming ``where.key``."""
    for item in fields(obj):
        bounds = item.metadata.get("bounds")
        problem = bounds.problem(getattr(obj, item.name)) if bounds is not None else None
        if problem:
            raise ConfigError(f"{where}.{item.name} {problem}")
    check = getattr(obj, "check", None)
    if check is not None:
        check()


class Settings:
    """Base of every config dataclass: built (from TOML or Python), it is validated."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        validate(self, self.SECTION)


def _levels(levels: list[float]) -> None:
    try:
        check_thermometer_levels(levels)
    except ValueError as error:
        raise ConfigError(f"data.{error}") from None


@dataclass
class DataConfig(Settings):
    """Which data and how it is encoded and batched."""

    SECTION: ClassVar[str] = "data"

    dataset: str = "digits"
    data_dir: str | None = setting(None, resume=RESUME_FREE)
    features: str | None = None
    """dataset = "npy": folder with x_train.npy, y_train.npy, x_test.npy, y_test.npy."""
    train_size: int | None = setting(None, ge=1)
    """Train on the first N images of the official training set (None: all)."""
    validation_size: int = setting(0, ge=0)
    """Carve this many images off the *end* of the training set for validation."""
    encoding: str = setting("unit", choices=ENCODINGS)
    """unit ([0,1]) | normalize (per-channel mean/std) | binarize | thermometer."""
    threshold: float | str = setting(0.5, ge=0, le=1, choices=("median",))
    """Binarisation threshold in [0,1], or "median" (per-pixel median of the train set)."""
    thermometer_bits: int = setting(4, ge=1, le=255)
    thermometer_levels: list[float] | None = setting(None, ge=0, lt=1, nonempty=True)
    """Explicit thermometer levels (increasing, in [0, 1)); thermometer_bits becomes their
    number. Default: the evenly spaced (i + 1)/(thermometer_bits + 1)."""
    signed: bool = False
    """Binary encodings in {-1,+1} instead of {0,1}."""
    augment: bool = False
    """Random crop after zero padding by ``augment_padding`` (+ horizontal flip)."""
    augment_padding: int = setting(4, ge=0, le=1024)
    """Largest shift of the random crop, in pixels (4 for CIFAR; 1 or 2 suits MNIST)."""
    augment_flip: bool = True
    """Also flip horizontally with probability 1/2 (right for CIFAR, wrong for digits)."""
    batch_size: int = setting(64, ge=1)
    eval_batch_size: int = setting(1000, ge=1, evaluation=True)
    download: bool = setting(True, resume=RESUME_FREE)
    verify: bool = setting(True, resume=RESUME_FREE)
    """Check the official checksums (set false to read your own files in the official format)."""

    def check(self) -> None:
        valid = (*SOURCES, NPY_DATASET)
        if self.dataset not in valid:
            raise ConfigError(f"data.dataset must be one of {', '.join(map(repr, valid))}, "
                              f"got {self.dataset!r}")
        if self.thermometer_levels is not None:
            _levels(self.thermometer_levels)
            self.thermometer_levels = [float(v) for v in self.thermometer_levels]
            self.thermometer_bits = len(self.thermometer_levels)


DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"
"""The device names a setting or option takes (``train.device``, ``binlearn convert --device``)."""


@dataclass
class TrainConfig(Settings):
    SECTION: ClassVar[str] = "train"

    epochs: int = setting(10, ge=1, le=MAX_EPOCHS, resume=RESUME_EPOCHS)
    device: str = setting("auto", pattern=DEVICE_PATTERN, pattern_help="auto, cpu, cuda or cuda:N",
                          evaluation=True)
    """auto (CUDA when present) | cpu | cuda | cuda:N."""
    checkpoint_every: int = setting(1, ge=1, le=MAX_EPOCHS, resume=RESUME_FREE)
    """Epochs between checkpoints (the last epoch is always saved)."""
    eval_every: int = setting(1, ge=1, le=MAX_EPOCHS, resume=RESUME_FREE)
    shuffle: bool = True
    threads: int | None = setting(None, ge=1, le=4096, evaluation=True)
    """torch intra-op threads (None: torch's default)."""
    stop_on_collapse: bool = setting(False, resume=RESUME_FREE)
    """An epoch whose training accuracy is at chance always warns (and is marked in its metrics
    record); true: the run also stops there, with a one-line error, once the epoch's
    checkpoint is written (:mod:`binlearn.experiment.collapse`)."""
    dist_timeout: float = setting(300.0, gt=0, le=86400, resume=RESUME_FREE)
    """Under torchrun: seconds a rank waits for the others before the run stops with one line
    (a lost rank; torch's own default is 30 minutes)."""


@dataclass
class ScheduleConfig(Settings):
    """How the optimizer's rates change over epochs (:class:`~binlearn.experiment.schedule.Schedule`),
    shared by every learner with an optimizer (EP, BPTT, STE).

    After e epochs, d = max(e − decay_start, 0) epochs have decayed; each multiplied the rates by
    ``lr_decay``, and with ``cosine_epochs`` C > 0 they are further scaled by
    ½(1 + cos(π·min(d, C)/C)). Bop has no learning rate: ``anneal_flips`` divides its thresholds
    τ by that factor, ``anneal_gamma`` multiplies its γ by it.
    """

    SECTION: ClassVar[str] = "schedule"

    lr_decay: float = setting(1.0, gt=0, le=1, resume=RESUME_SCHEDULE)
    """Multiply every learning rate by this after each epoch."""
    cosine_epochs: int = setting(0, ge=0, le=MAX_EPOCHS, resume=RESUME_SCHEDULE)
    """> 0: cosine-anneal every learning rate to 0 over this many epochs."""
    decay_start: int = setting(0, ge=0, le=MAX_EPOCHS, resume=RESUME_SCHEDULE)
    """Epochs at constant rates before ``lr_decay`` and the cosine schedule begin."""
    anneal_flips: bool = setting(False, resume=RESUME_SCHEDULE)
    """Bop: divide every threshold τ by the factor that scales the learning rates, so
    flips become rarer as the schedule decays (none once the cosine factor reaches 0)."""
    anneal_gamma: bool = setting(False, resume=RESUME_SCHEDULE)
    """Bop: multiply every γ by the factor that scales the learning rates, as a learning-rate
    decay of the filtered update m (Helwegen et al. 2019 decay γ): m moves in smaller steps,
    so flips need a steadier push (none once the cosine factor reaches 0: m stops moving)."""

    def constant(self) -> bool:
        """No decay at all (every factor 1)."""
        return self.lr_decay == 1.0 and self.cosine_epochs == 0

    def check(self) -> None:
        for key in ("anneal_flips", "anneal_gamma"):
            if getattr(self, key) and self.constant():
                raise ConfigError(f"schedule.{key} needs a schedule: schedule.cosine_epochs > 0 "
                                  "or schedule.lr_decay < 1")

    def check_optimizer(self, optimizer: Any) -> None:
        """Flip annealing needs an optimizer that flips (Bop)."""
        for key in ("anneal_flips", "anneal_gamma"):
            if getattr(self, key) and getattr(optimizer, "name", None) != "bop":
                raise ConfigError(f"schedule.{key} needs optimizer.name = \"bop\"")


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = None
    rule: Any = None
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str | None = field(default=None, metadata={"resume": RESUME_FREE})
    seed: int = 0
    optimizer: Any = None
    """The rule's optimizer settings (None: the rule has none, e.g. local_binary)."""
    schedule: ScheduleConfig | None = None
    """Present exactly when ``optimizer`` is."""


MODEL_CONFIGS: dict[str, type] = {}
RULE_CONFIGS: dict[str, type] = {}
OPTIMIZER_CONFIGS: dict[str, type] = {}
"""rule name -> the dataclass of its [optimizer] section (rules without one are absent)."""


def register_model_config(kind: str, cls: type) -> type:
    """Make ``[model] kind = "<kind>"`` load into dataclass ``cls``."""
    MODEL_CONFIGS[kind] = cls
    return cls


def register_rule_config(name: str, cls: type, optimizer: type | None = None) -> type:
    """Make ``[rule] name = "<name>"`` load into dataclass ``cls``; ``optimizer``: the dataclass
    of the rule's [optimizer] section (the rule then also has a [schedule])."""
    RULE_CONFIGS[name] = cls
    if optimizer is not None:
        OPTIMIZER_CONFIGS[name] = optimizer
    return cls


# --------------------------------------------------------------------------- the old layout
OLD_RULE_KEYS: dict[str, str] = {
    # the estimator's own key, renamed: [schedule] is now a section
    "schedule": "rule.relaxation",
    # optimizer settings
    "optimizer": "optimizer.name",
    "lr": "optimizer.lr",
    "learning_rates": "optimizer.learning_rates",
    "bias_learning_rates": "optimizer.bias_learning_rates",
    "momentum": "optimizer.momentum",
    "weight_decay": "optimizer.weight_decay",
    "gamma": "optimizer.gamma",
    "threshold": "optimizer.threshold",
    "flip_on_equal": "optimizer.flip_on_equal",
    "scaled_threshold": "optimizer.scaled_threshold",
    "scale_learning_rate": "optimizer.scale_learning_rate",
    "scale_decay": "optimizer.scale_decay",
    "readout_learning_rate": "optimizer.readout_learning_rate",
    # the schedule
    "lr_decay": "schedule.lr_decay",
    "cosine_epochs": "schedule.cosine_epochs",
    "decay_start": "schedule.decay_start",
    "anneal_flips": "schedule.anneal_flips",
    "anneal_gamma": "schedule.anneal_gamma",
}
"""The old layout → the new, in one place: before binlearn had [optimizer] and [schedule]
sections, the ep, bptt and ste rules kept these keys under [rule] (``rule.KEY`` is now the
value's ``section.key``)."""


def upgrade_old_layout(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A table in the old layout (optimizer and schedule keys under [rule], no [optimizer] or
    [schedule] section) rewritten in the new one, and the old keys it moved (empty: the table
    was already in the new layout and is returned unchanged)."""
    rule = raw.get("rule")
    name = rule.get("name", "ste") if isinstance(rule, dict) else None
    if (not isinstance(rule, dict) or "optimizer" in raw or "schedule" in raw
            or not isinstance(name, str) or name not in OPTIMIZER_CONFIGS):
        return raw, []
    moved = [key for key in rule if key in OLD_RULE_KEYS]
    if not moved:
        return raw, []
    raw = {**raw, "rule": dict(rule)}
    for key in moved:
        section, new_key = OLD_RULE_KEYS[key].split(".")
        raw.setdefault(section, {})[new_key] = raw["rule"].pop(key)
    return raw, moved


_NOTED: set[str] = set()
"""Files already announced as old-layout (a resume reads its config.toml more than once)."""


def note_old_layout(where: str | Path, moved: list[str]) -> None:
    """The one line that says a file was read in the old layout (once per file and process)."""
    key = str(Path(where).resolve())
    if key in _NOTED:
        return
    _NOTED.add(key)
    print(f"binlearn: note: {where} is in the old config layout ({len(moved)} optimizer/schedule keys "
          "under [rule]); read with them moved to [optimizer] and [schedule]", file=sys.stderr)


# --------------------------------------------------------------------------- type checks
def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp``; convert int->float and list->tuple."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as error:
                errors.append(error)
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list ({_type_name(tp)}), got {value!r}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return list(items) if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return dataclass_from_dict(tp, value, where)
    return value


def dataclass_from_dict(cls: type, raw: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, rejecting unknown keys and wrong types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"[{where}] must be a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        moved = OLD_RULE_KEYS.get(unknown[0]) if where == "rule" else None
        hint = f" (it is now {moved})" if moved else ""
        raise ConfigError(
            f"unknown key {where}.{unknown[0]}{hint}; valid keys of [{where}]: {', '.join(names)}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items() if v is not RESET}
    return cls(**kwargs)  # validated by Settings.__post_init__


TOP_KEYS = ("name", "seed", "data", "model", "rule", "optimizer", "schedule", "train")
TOP_SECTIONS = ("", "data", "model", "rule", "optimizer", "schedule", "train")
"""Where the fields of an experiment live: "" is the top level (``name``, ``seed``)."""


def _selector(table: Any, section: str, key: str, default: str, registry: dict[str, type],
              what: str) -> str:
    """``model.kind`` / ``rule.name``: a string naming a registered config."""
    if not isinstance(table, dict):
        raise ConfigError(f"[{section}] must be a table, got {table!r}")
    value = table.get(key, default)
    if value is RESET:
        value = default
    if not isinstance(value, str) or value not in registry:
        raise ConfigError(f"unknown {section}.{key} {value!r}; valid {what}: {', '.join(sorted(registry))}")
    return value


def config_from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a whole experiment table (as read from TOML) into an ExperimentConfig."""
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; valid top-level keys: {', '.join(TOP_KEYS)}")
    kind = _selector(raw.get("model", {}), "model", "kind", "mlp", MODEL_CONFIGS, "kinds")
    name = _selector(raw.get("rule", {}), "rule", "name", "ste", RULE_CONFIGS, "rules")
    model_raw = {k: v for k, v in raw.get("model", {}).items() if k != "kind"}
    rule_raw = {k: v for k, v in raw.get("rule", {}).items() if k != "name"}
    seed = _coerce(raw.get("seed", 0), int, "seed")
    if not 0 <= seed < _INT_LIMIT:
        raise ConfigError(f"seed must be in [0, 2^63), got {seed}")
    run_name = _coerce(raw.get("name"), str | None, "name")
    optimizer = schedule = None
    if name in OPTIMIZER_CONFIGS:
        optimizer_raw = raw.get("optimizer", {})
        if isinstance(optimizer_raw, dict) and "name" in optimizer_raw:
            optimizer_raw = dict(optimizer_raw)
            optimizer_raw["name"] = _coerce(optimizer_raw["name"], str, "optimizer.name")
        optimizer = dataclass_from_dict(OPTIMIZER_CONFIGS[name], optimizer_raw, "optimizer")
        schedule = dataclass_from_dict(ScheduleConfig, raw.get("schedule", {}), "schedule")
        schedule.check_optimizer(optimizer)
    else:
        for section in ("optimizer", "schedule"):
            if section in raw:
                raise ConfigError(f"rule {name!r} has no [{section}] section (its settings are all "
                                  f"under [rule]; rules with one: {', '.join(sorted(OPTIMIZER_CONFIGS))})")
    return ExperimentConfig(
        data=dataclass_from_dict(DataConfig, raw.get("data", {}), "data"),
        model=dataclass_from_dict(MODEL_CONFIGS[kind], model_raw, "model"),
        rule=dataclass_from_dict(RULE_CONFIGS[name], rule_raw, "rule"),
        train=dataclass_from_dict(TrainConfig, raw.get("train", {}), "train"),
        name=run_name,
        seed=seed,
        optimizer=optimizer,
        schedule=schedule,
    )


def _kind_of(table: Any, registry: dict[str, type]) -> str:
    for key, cls in registry.items():
        if type(table) is cls:
            return key
    raise ConfigError(f"{type(table).__name__} is not a registered config")


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as a TOML-ready table (None values dropped: TOML has no null)."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if v is not None}
        if isinstance(obj, list | tuple):
            return [clean(v) for v in obj]
        return obj

    out: dict[str, Any] = {"seed": config.seed}
    if config.name is not None:
        out["name"] = config.name
    out["data"] = dataclasses.asdict(config.data)
    out["model"] = {"kind": _kind_of(config.model, MODEL_CONFIGS), **dataclasses.asdict(config.model)}
    out["rule"] = {"name": _kind_of(config.rule, RULE_CONFIGS), **dataclasses.asdict(config.rule)}
    if config.optimizer is not None:
        out["optimizer"] = dataclasses.asdict(config.optimizer)
    if config.schedule is not None:
        out["schedule"] = dataclasses.asdict(config.schedule)
    out["train"] = dataclasses.asdict(config.train)
    return clean(out)


def section_keys(config: ExperimentConfig, section: str, *, evaluation: bool | None = None) -> list[str]:
    """``section.key`` for every field of ``config``'s [section] (those declared
    ``evaluation=...`` only, when given); [] for a section the config lacks."""
    table = getattr(config, section, None)
    if table is None or not dataclasses.is_dataclass(table):
        return []
    return [f"{section}.{f.name}" for f in fields(table)
            if evaluation is None or f.metadata.get("evaluation", False) == evaluation]


def _field(config: ExperimentConfig, key: str) -> dataclasses.Field | None:
    """The dataclass field behind ``key`` ("section.key", or a top-level key such as "name")."""
    section, _, leaf = key.rpartition(".")
    table = getattr(config, section, None) if section else config
    if table is None or not dataclasses.is_dataclass(table):
        return None
    return next((item for item in fields(table) if item.name == leaf), None)


def resume_policy(key: str, *configs: ExperimentConfig) -> str:
    """What ``--resume`` may do with ``key``: the ``resume`` its field declares
    (:func:`setting`) in the first of ``configs`` that has it; :data:`RESUME_REFUSED` for a key
    no field declares (the seed, ``model.kind``, ``rule.name``, a field of another model)."""
    for config in configs:
        item = _field(config, key)
        if item is not None:
            return str(item.metadata.get("resume", RESUME_REFUSED))
    return RESUME_REFUSED


def resume_keys(config: ExperimentConfig, policy: str, sections: tuple[str, ...] = TOP_SECTIONS) -> list[str]:
    """Every key of ``config`` in ``sections`` ("" for the top-level keys) whose field declares
    ``resume=policy``."""
    keys = []
    for section in sections:
        table = getattr(config, section, None) if section else config
        if table is None or not dataclasses.is_dataclass(table):
            continue
        keys += [f"{section}.{item.name}" if section else item.name for item in fields(table)
                 if item.metadata.get("resume", RESUME_REFUSED) == policy]
    return keys


def eval_keys(config: ExperimentConfig) -> list[str]:
    """The keys ``binlearn eval --set`` may change: those declared ``setting(evaluation=True)``
    (how the trained model is run, never what it is), in section order."""
    return [key for section in ("rule", "data", "train")
            for key in section_keys(config, section, evaluation=True)]


def _parse_value(text: str) -> Any:
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:
        value = None
    if value is None or nesting_depth(value) > MAX_NESTING:
        raise ConfigError(f"--set value {text[:40]}...: arrays or tables nested more than {MAX_NESTING} deep")
    return value


class _Reset:
    def __repr__(self) -> str:
        return "<default>"


RESET: Any = _Reset()
"""What ``--set section.key=`` puts in a raw table: the key is checked, then its default used."""


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to a raw table (before validation). An empty value,
    ``section.key=``, removes the key, so that its default applies (e.g. Bop's ``optimizer.gamma``
    when ``optimizer.name`` becomes another optimizer); ``section.key=""`` is the empty string."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        path, text = item.split("=", 1)
        parts = path.strip().split(".")
        value = _parse_value(text.strip())
        if not all(parts):
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        if not text.strip():  # `key=`: back to the default
            if len(parts) == 1 and parts[0] in TOP_KEYS and parts[0] not in ("name", "seed"):
                raise ConfigError(f"--set {parts[0]}=: [{parts[0]}] is a section; reset one of its keys, "
                                  f"e.g. --set {parts[0]}.KEY=")
            if len(parts) == 1:
                raw.pop(parts[0], None) if parts[0] in TOP_KEYS else raw.__setitem__(parts[0], RESET)
                continue
            if len(parts) > 2:
                raise ConfigError(f"--set expects section.key=value, got {item!r}")
            section = raw.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise ConfigError(f"--set {path}: {parts[0]} is not a section")
            section[parts[1]] = RESET  # checked as a key (unknown keys fail), then left out
            continue
        if len(parts) == 1:
            if parts[0] in TOP_KEYS and parts[0] not in ("name", "seed"):
                raise ConfigError(f"--set {parts[0]}={text.strip()}: [{parts[0]}] is a section; "
                                  f"set one of its keys, e.g. --set {parts[0]}.KEY=VALUE")
            raw[parts[0]] = value
        elif len(parts) == 2:
            section = raw.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise ConfigError(f"--set {path}: {parts[0]} is not a section")
            section[parts[1]] = value
        else:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
    return raw


MAX_NESTING = 16
"""The deepest nesting of arrays and tables a config, a --set value or a results file may
hold (binlearn's own go 3 deep); deeper ones are refused in one line, never a RecursionError."""


def nesting_depth(value: Any) -> int:
    """How deeply arrays and tables nest in ``value`` (a scalar: 0), counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list | tuple):
            deepest = max(deepest, depth + 1)
            if depth + 1 <= MAX_NESTING:  # past the limit the answer is already known
                stack.extend((child, depth + 1) for child in item)
    return deepest


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """``tomllib.loads`` with every failure one ConfigError naming ``where``: invalid TOML, and
    arrays or tables nested deeper than :data:`MAX_NESTING` (which would exhaust the stack)."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML ({error})") from None
    except RecursionError:
        table = None
    if table is None or nesting_depth(table) > MAX_NESTING:
        raise ConfigError(f"{where}: arrays or tables nested more than {MAX_NESTING} deep")
    return table


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError as error:  # a folder on its way this user may not enter
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    if is_dir:
        raise ConfigError(f"{path} is a directory, not a config file (give a .toml file, e.g. configs/...)")
    if not is_file:
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text TOML file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    return parse_toml(text, str(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file's table in the new layout (an old-layout file is upgraded, with one line)."""
    raw, moved = upgrade_old_layout(read_toml(path))
    if moved:
        note_old_layout(path, moved)
    return raw


def describe(config: ExperimentConfig) -> str:
    """What a config trains, in a few words (e.g. for an empty config file)."""
    table = config_to_dict(config)
    return (f"{table['model']['kind']} model trained by {table['rule']['name']} on {config.data.dataset}, "
            f"{config.train.epochs} epochs")


# The quickstart: what ``binlearn train`` runs with no CONFIG (configs/quickstart/
# digits-local-binary.toml is this table with comments; a test checks they agree). The local
# binary rule on the embedded digits: ≥ 0.93 test accuracy in about 20 s on two cores.
QUICKSTART: dict[str, Any] = {
    "name": "quickstart-digits-local-binary",
    "seed": 0,
    "data": {"dataset": "digits", "encoding": "thermometer", "thermometer_bits": 3, "batch_size": 20},
    "model": {"kind": "binary_mlp", "hidden": [1035, 1035], "init_std": 64.0, "hidden_dtype": "int16"},
    "rule": {"name": "local_binary", "group_size": 115, "robustness": 0.25, "reinforcement": 0.5},
    "train": {"epochs": 20},
}


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load and validate an experiment (``path=None``: the quickstart, :data:`QUICKSTART`;
    :func:`default_config` is every field's default instead: an STE MLP on the digits)."""
    raw = read_config_file(path) if path is not None else copy.deepcopy(QUICKSTART)
    config = config_from_dict(apply_overrides(raw, overrides or []))
    if path is not None and not raw:
        print(f"binlearn: note: {path} sets nothing: training the defaults ({describe(config)})",
              file=sys.stderr)
    return config


def default_config(overrides: list[str] | None = None) -> ExperimentConfig:
    """Every field's default (an STE-trained binary-weight MLP on the digits), with ``overrides``
    (``section.key=value``) applied — the base the tests build small experiments from."""
    return config_from_dict(apply_overrides({}, overrides or []))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(table: dict[str, Any]) -> str:
    """Write a two-level table (scalars, then sections of scalars/lists) as TOML."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for key, section in table.items():
        if isinstance(section, dict):
            lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in section.items()]
    return "\n".join(lines) + "\n"
