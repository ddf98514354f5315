"""Typed experiment configuration: dataclasses loaded from TOML, with validated overrides.

An experiment file has four sections plus two top-level keys::

    name = "mnist-ste-binary"     # optional, used for the run directory
    seed = 0
    [data]   -> DataConfig
    [model]  -> the dataclass registered for model.kind (e.g. "mlp", "energy")
    [rule]   -> the dataclass registered for rule.name (e.g. "ste", "ep", "local_binary")
    [train]  -> TrainConfig

Every key is checked: an unknown key or a value of the wrong type raises
:class:`ConfigError` with a message that lists the valid keys (the CLI prints it as one
line, never a traceback). ``--set section.key=value`` overrides parse ``value`` as TOML
(``--set train.epochs=3``, ``--set model.hidden=[512,512]``, ``--set data.dataset=mnist``),
falling back to a bare string.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from binlearn.data.encodings import check_thermometer_levels

__all__ = [
    "ConfigError",
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


class ConfigError(ValueError):
    """A configuration problem, explained in one line for the user."""


@dataclass
class DataConfig:
    """Which data and how it is encoded and batched."""

    dataset: str = "digits"
    data_dir: str | None = None
    features: str | None = None
    """dataset = "npy": folder with x_train.npy, y_train.npy, x_test.npy, y_test.npy."""
    train_size: int | None = None
    """Train on the first N images of the official training set (None: all)."""
    validation_size: int = 0
    """Carve this many images off the *end* of the training set for validation."""
    encoding: str = "unit"
    """unit ([0,1]) | normalize (per-channel mean/std) | binarize | thermometer."""
    threshold: float | str = 0.5
    """Binarisation threshold in [0,1], or "median" (per-pixel median of the train set)."""
    thermometer_bits: int = 4
    thermometer_levels: list[float] | None = None
    """Explicit thermometer levels (increasing, in [0, 1)); thermometer_bits becomes their
    number. Default: the evenly spaced (i + 1)/(thermometer_bits + 1)."""
    signed: bool = False
    """Binary encodings in {-1,+1} instead of {0,1}."""
    augment: bool = False
    """Random crop after zero padding by ``augment_padding`` (+ horizontal flip)."""
    augment_padding: int = 4
    """Largest shift of the random crop, in pixels (4 for CIFAR; 1 or 2 suits MNIST)."""
    augment_flip: bool = True
    """Also flip horizontally with probability 1/2 (right for CIFAR, wrong for digits)."""
    batch_size: int = 64
    eval_batch_size: int = 1000
    download: bool = True
    verify: bool = True
    """Check the official checksums (set false to read your own files in the official format)."""

    def __post_init__(self) -> None:
        if self.augment_padding < 0:
            raise ValueError(f"augment_padding must be >= 0, got {self.augment_padding}")
        if self.thermometer_levels is not None:
            check_thermometer_levels(self.thermometer_levels)
            self.thermometer_levels = [float(v) for v in self.thermometer_levels]
            self.thermometer_bits = len(self.thermometer_levels)


@dataclass
class TrainConfig:
    epochs: int = 10
    device: str = "auto"
    """auto (CUDA when present) | cpu | cuda | cuda:N."""
    checkpoint_every: int = 1
    """Epochs between checkpoints (the last epoch is always saved)."""
    eval_every: int = 1
    shuffle: bool = True
    threads: int | None = None
    """torch intra-op threads (None: torch's default)."""


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = None
    rule: Any = None
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str | None = None
    seed: int = 0


MODEL_CONFIGS: dict[str, type] = {}
RULE_CONFIGS: dict[str, type] = {}


def register_model_config(kind: str, cls: type) -> type:
    """Make ``[model] kind = "<kind>"`` load into dataclass ``cls``."""
    MODEL_CONFIGS[kind] = cls
    return cls


def register_rule_config(name: str, cls: type) -> type:
    """Make ``[rule] name = "<name>"`` load into dataclass ``cls``."""
    RULE_CONFIGS[name] = cls
    return cls


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
    if dataclasses.is_dataclass(tp):
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
        raise ConfigError(
            f"unknown key {where}.{unknown[0]}; valid keys of [{where}]: {', '.join(names)}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"[{where}]: {error}") from None
    return obj


def config_from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a whole experiment table (as read from TOML) into an ExperimentConfig."""
    top_keys = ["name", "seed", "data", "model", "rule", "train"]
    unknown = sorted(set(raw) - set(top_keys))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; valid top-level keys: {', '.join(top_keys)}")
    model_raw = dict(raw.get("model", {"kind": "mlp"}))
    rule_raw = dict(raw.get("rule", {"name": "ste"}))
    kind = model_raw.pop("kind", "mlp")
    name = rule_raw.pop("name", "ste")
    if kind not in MODEL_CONFIGS:
        raise ConfigError(f"unknown model.kind {kind!r}; valid kinds: {', '.join(sorted(MODEL_CONFIGS))}")
    if name not in RULE_CONFIGS:
        raise ConfigError(f"unknown rule.name {name!r}; valid rules: {', '.join(sorted(RULE_CONFIGS))}")
    seed = _coerce(raw.get("seed", 0), int, "seed")
    run_name = _coerce(raw.get("name"), str | None, "name")
    return ExperimentConfig(
        data=dataclass_from_dict(DataConfig, raw.get("data", {}), "data"),
        model=dataclass_from_dict(MODEL_CONFIGS[kind], model_raw, "model"),
        rule=dataclass_from_dict(RULE_CONFIGS[name], rule_raw, "rule"),
        train=dataclass_from_dict(TrainConfig, raw.get("train", {}), "train"),
        name=run_name,
        seed=seed,
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
    out["train"] = dataclasses.asdict(config.train)
    return clean(out)


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to a raw table (before validation)."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        path, text = item.split("=", 1)
        parts = path.strip().split(".")
        value = _parse_value(text.strip())
        if len(parts) == 1:
            raw[parts[0]] = value
        elif len(parts) == 2:
            section = raw.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise ConfigError(f"--set {path}: {parts[0]} is not a section")
            section[parts[1]] = value
        else:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
    return raw


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a config file (give a .toml file, e.g. configs/...)")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text TOML file") from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load and validate an experiment (``path=None``: the built-in quickstart)."""
    raw = read_toml(path) if path is not None else {}
    return config_from_dict(apply_overrides(raw, overrides or []))


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
