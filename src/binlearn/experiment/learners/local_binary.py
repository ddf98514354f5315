"""The binary-native local rule and its single-layer CP+R baseline, configured and built for
the :class:`~binlearn.experiment.learners.local.LocalLearner`:

``[model] kind = "binary_mlp"`` + ``[rule] name = "local_binary"``, and
``[model] kind = "committee"`` + ``[rule] name = "cpr"``.

Randomness: initial weights and classifiers come from torch's global generator (seeded by
the runner before the build).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from binlearn.experiment.config import (
    ConfigError,
    Settings,
    register_model_config,
    register_rule_config,
    setting,
)
from binlearn.experiment.learners.local import LocalLearner
from binlearn.experiment.registry import register_learner
from binlearn.rules.cpr import CPR, VARIANTS, CommitteeMachine, CommitteeParameters, init_committee
from binlearn.rules.local_binary import (
    HIDDEN_DTYPES,
    BinaryLayer,
    LocalBinary,
    LocalBinaryParameters,
    SignNetwork,
    init_layers,
)

__all__ = ["BinaryMLPConfig", "LocalBinaryConfig", "CommitteeConfig", "CPRConfig",
           "LocalBinaryLearner", "CommitteeLearner", "build_local_binary_learner", "build_cpr_learner"]

_ERROR_SIGNALS = ("target", "difference")


def check_init_std(init_std: float, hidden_dtype: str) -> None:
    """Refuse an initial spread that saturates the integer hidden weights: with init_std above
    a third of the dtype's largest value, more than 0.3 % of H ~ N(0, init_std²) are clipped to
    ±max at the start, and far more beyond, where increments of ±1 cannot move them (X36b: the
    run ends at chance without a word)."""
    largest = int(torch.iinfo(HIDDEN_DTYPES[hidden_dtype]).max)
    if init_std > largest / 3:
        raise ConfigError(f"model.init_std = {init_std:g} saturates the {hidden_dtype} hidden weights "
                          f"(|H| <= {largest:,}): give at most {largest // 3:,}, or model.hidden_dtype = "
                          "\"int32\"")


@dataclass
class BinaryMLPConfig(Settings):
    """Binary hidden layers with integer hidden weights (H ~ round(N(0, init_std²)))."""

    SECTION: ClassVar[str] = "model"

    hidden: list[int] = setting(factory=lambda: [1035, 1035], ge=1, nonempty=True)
    init_std: float = setting(64.0, gt=0, le=1e9)
    hidden_dtype: str = setting("int16", choices=HIDDEN_DTYPES)

    def check(self) -> None:
        check_init_std(self.init_std, self.hidden_dtype)


@dataclass
class LocalBinaryConfig(Settings):
    """group_size: units per least-wrong-unit group [G]; robustness: margin / width [rob];
    reinforcement: p_0; clip: |H| bound (absent: none); probability_bits: resolution of
    p_r; error_signal: target (desired s_j = P[y, j]) | difference (only units where the
    label's and the rival's classifier weights differ)."""

    SECTION: ClassVar[str] = "rule"

    group_size: int = setting(115, ge=1)
    robustness: float = setting(0.25, ge=0, le=1e4)  # robustness · fan-in is an int32 margin
    reinforcement: float = setting(0.5, ge=0, le=1)
    clip: int | None = setting(None, ge=1)
    probability_bits: int = setting(16, ge=1, le=40)
    error_signal: str = setting("target", choices=_ERROR_SIGNALS)

    def parameters(self) -> LocalBinaryParameters:
        return LocalBinaryParameters(self.group_size, self.robustness, self.reinforcement, self.clip,
                                     self.probability_bits, self.error_signal)


@dataclass
class CommitteeConfig(Settings):
    """One binary hidden layer of ``hidden`` units in committees of ``committee_size`` (odd);
    hidden must be a multiple of committee_size (rule.variant "reference") or of
    committee_size × classes ("class_committees", which deals the committees to the classes)."""

    SECTION: ClassVar[str] = "model"

    hidden: int = setting(2070, ge=1)
    committee_size: int = setting(9, ge=1)
    init_std: float = setting(64.0, gt=0, le=1e9)
    hidden_dtype: str = setting("int16", choices=HIDDEN_DTYPES)

    def check(self) -> None:
        check_init_std(self.init_std, self.hidden_dtype)
        if self.committee_size % 2 == 0:
            raise ConfigError(f"model.committee_size must be odd, got {self.committee_size}")


@dataclass
class CPRConfig(Settings):
    """variant: reference (the authors' baseline: frozen random ±1 readout of the committee
    votes, one unit updated per wrong committee) | class_committees (committees dealt to the
    classes, least-action flips in the label's and the rival's committees); robustness:
    margin as a fraction of the committees scoring a class (all of them for reference);
    reinforcement: p_0. See :mod:`binlearn.rules.cpr`."""

    SECTION: ClassVar[str] = "rule"

    variant: str = setting("reference", choices=VARIANTS)
    robustness: float = setting(0.25, ge=0, le=1e4)  # robustness · fan-in is an int32 margin
    reinforcement: float = setting(0.5, ge=0, le=1)
    clip: int | None = setting(None, ge=1)
    probability_bits: int = setting(16, ge=1, le=40)

    def parameters(self) -> CommitteeParameters:
        return CommitteeParameters(self.robustness, self.reinforcement, self.clip, self.probability_bits)


def LocalBinaryLearner(layers: list[BinaryLayer], params: LocalBinaryParameters,
                       device: torch.device) -> LocalLearner:
    """The name of the local binary rule's learner before there was one local learner: builds a
    :class:`~binlearn.experiment.learners.local.LocalLearner` (no class to test with
    ``isinstance``: ask ``learner.model`` its type)."""
    return LocalLearner(layers, LocalBinary(params), device)


def CommitteeLearner(machine: CommitteeMachine, params: CommitteeParameters,
                     device: torch.device) -> LocalLearner:
    """The name of the CP+R learner before there was one local learner: builds a
    :class:`~binlearn.experiment.learners.local.LocalLearner`."""
    return LocalLearner(machine, CPR(params), device)


def _in_features(input_shape: tuple[int, ...]) -> int:
    return int(np.prod(input_shape))


def build_local_binary_learner(model_cfg: BinaryMLPConfig, rule_cfg: LocalBinaryConfig,
                               input_shape: tuple[int, ...], num_classes: int,
                               device: torch.device) -> LocalLearner:
    if any(width % rule_cfg.group_size for width in model_cfg.hidden):
        # as the reference code: every layer splits into whole groups of G units
        raise ConfigError(f"rule.group_size={rule_cfg.group_size} must divide every hidden width "
                          f"{model_cfg.hidden}")
    layers = init_layers([_in_features(input_shape), *model_cfg.hidden], num_classes,
                         model_cfg.init_std, model_cfg.hidden_dtype, clip=rule_cfg.clip)
    return LocalLearner(SignNetwork(tuple(layers)), LocalBinary(rule_cfg.parameters()), device)


def build_cpr_learner(model_cfg: CommitteeConfig, rule_cfg: CPRConfig, input_shape: tuple[int, ...],
                      num_classes: int, device: torch.device) -> LocalLearner:
    if rule_cfg.variant == "class_committees" and model_cfg.hidden % (model_cfg.committee_size * num_classes):
        raise ConfigError(f"model.hidden={model_cfg.hidden} must be a multiple of committee_size × classes "
                          f"= {model_cfg.committee_size * num_classes} (rule.variant = \"class_committees\")")
    if model_cfg.hidden % model_cfg.committee_size:
        raise ConfigError(f"model.hidden={model_cfg.hidden} must be a multiple of committee_size "
                          f"= {model_cfg.committee_size}")
    machine = init_committee(_in_features(input_shape), model_cfg.hidden, model_cfg.committee_size,
                             num_classes, model_cfg.init_std, model_cfg.hidden_dtype, clip=rule_cfg.clip,
                             variant=rule_cfg.variant)
    return LocalLearner(machine, CPR(rule_cfg.parameters()), device)


def _hidden_weight_bytes(dtype: str) -> int:
    """An integer hidden weight, plus its packed sign bit (rounded up to a byte)."""
    return torch.empty((), dtype=HIDDEN_DTYPES[dtype]).element_size() + 1


def binary_mlp_memory(cfg: BinaryMLPConfig, input_shape: tuple[int, ...], num_classes: int) -> int:
    sizes = [math.prod(input_shape), *cfg.hidden]
    return _hidden_weight_bytes(cfg.hidden_dtype) * sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))


def committee_memory(cfg: CommitteeConfig, input_shape: tuple[int, ...], num_classes: int) -> int:
    return _hidden_weight_bytes(cfg.hidden_dtype) * math.prod(input_shape) * cfg.hidden


register_model_config("binary_mlp", BinaryMLPConfig)
register_rule_config("local_binary", LocalBinaryConfig)
register_learner("binary_mlp", "local_binary", build_local_binary_learner, memory=binary_mlp_memory)
register_model_config("committee", CommitteeConfig)
register_rule_config("cpr", CPRConfig)
register_learner("committee", "cpr", build_cpr_learner, memory=committee_memory)
