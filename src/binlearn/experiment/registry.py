"""Which (model kind, rule name) pairs the runner can build, and how.

Each learner module registers its config dataclasses and a builder::

    register_model_config("mlp", MLPConfig)
    register_rule_config("ste", STEConfig)
    register_learner("mlp", "ste", build_ste_learner)

with ``build(model_config, rule_config, input_shape, num_classes, device) -> Learner``
(rules registered with an optimizer config also get ``optimizer=`` and ``schedule=``,
the experiment's [optimizer] and [schedule] sections). ``input_shape`` is one sample's
shape, ``(channels, height, width)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from binlearn.experiment.config import MODEL_CONFIGS, RULE_CONFIGS, ConfigError, ExperimentConfig
from binlearn.experiment.learner import Learner

__all__ = ["register_learner", "build_learner", "check_memory", "available_memory", "LEARNERS",
           "kind_and_rule"]

Builder = Callable[..., Learner]
MemoryEstimate = Callable[[Any, tuple[int, ...], int], int]
"""(model config, input shape, classes) -> bytes of the learner's weights, gradients and
optimizer state, a lower bound of what training needs."""
LEARNERS: dict[tuple[str, str], Builder] = {}
MEMORY: dict[str, MemoryEstimate] = {}


def register_learner(kind: str, rule: str, builder: Builder,
                     memory: MemoryEstimate | None = None) -> Builder:
    """``memory``: how many bytes a model of this kind needs (for :func:`check_memory`)."""
    LEARNERS[(kind, rule)] = builder
    if memory is not None:
        MEMORY[kind] = memory
    return builder


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new model on ``device`` (None: unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(count: int) -> str:
    return f"{count / 2**30:,.1f} GiB"


def check_memory(config: ExperimentConfig, input_shape: tuple[int, ...], num_classes: int,
                 device: torch.device) -> None:
    """Refuse, in one line and before anything is built, a model whose weights, gradients and
    optimizer state alone exceed the memory available on ``device``."""
    kind, _ = kind_and_rule(config)
    if kind not in MEMORY:
        return
    needed, free = MEMORY[kind](config.model, input_shape, num_classes), available_memory(device)
    if free is not None and needed > free:
        hidden = getattr(config.model, "hidden", None)
        what = f" (model.hidden = {hidden})" if hidden is not None else ""
        raise ConfigError(f"the model{what} needs at least {_gib(needed)} for its weights, gradients and "
                          f"optimizer state, but only {_gib(free)} of memory is available on {device}")


def kind_and_rule(config: ExperimentConfig) -> tuple[str, str]:
    """(``model.kind``, ``rule.name``) of a typed config, e.g. ("energy", "ep")."""
    kind = next(k for k, c in MODEL_CONFIGS.items() if type(config.model) is c)
    name = next(k for k, c in RULE_CONFIGS.items() if type(config.rule) is c)
    return kind, name


def build_learner(
    config: ExperimentConfig, input_shape: tuple[int, ...], num_classes: int, device: torch.device
) -> Learner:
    kind, name = kind_and_rule(config)
    if (kind, name) not in LEARNERS:
        valid = ", ".join(sorted(r for k, r in LEARNERS if k == kind)) or "none"
        raise ConfigError(f"rule {name!r} cannot train model kind {kind!r}; rules for {kind!r}: {valid}")
    extras = {} if config.optimizer is None else {"optimizer": config.optimizer, "schedule": config.schedule}
    return LEARNERS[(kind, name)](config.model, config.rule, input_shape, num_classes, device, **extras)
