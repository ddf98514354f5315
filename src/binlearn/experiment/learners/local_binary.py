"""The binary-native local rule and its single-layer CP+R baseline wired as learners:

``[model] kind = "binary_mlp"`` + ``[rule] name = "local_binary"``, and
``[model] kind = "committee"`` + ``[rule] name = "cpr"``.

Inputs must be binary (``data.encoding = "binarize"`` or ``"thermometer"``, signed or not);
they become ±1 bits once per batch at this boundary. The learners run on the CPU with the
numba kernels whatever ``train.device`` says (tensors are moved at the boundary).
Randomness: initial weights and classifiers come from torch's global generator (seeded by
the runner before the build), and every step draws its reinforcement seed from it (re-seeded
at each epoch start), so a resumed run is bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from binlearn.binary.packing import to_numpy_words
from binlearn.experiment.config import (
    ConfigError,
    Settings,
    register_model_config,
    register_rule_config,
    setting,
)
from binlearn.experiment.learner import Reducer
from binlearn.experiment.registry import register_learner
from binlearn.rules.cpr import (
    CPR,
    VARIANTS,
    CommitteeMachine,
    CommitteeParameters,
    committee_predict,
    init_committee,
)
from binlearn.rules.local_binary import (
    HIDDEN_DTYPES,
    BinaryLayer,
    LocalBinary,
    LocalBinaryParameters,
    SignNetwork,
    init_layers,
    input_signs,
    pack_sign_tensor,
    predict,
    probability_numerator,
    reinforcement_probability,
)

__all__ = ["BinaryMLPConfig", "LocalBinaryConfig", "CommitteeConfig", "CPRConfig",
           "LocalBinaryLearner", "CommitteeLearner", "build_local_binary_learner", "build_cpr_learner"]

_ERROR_SIGNALS = ("target", "difference")


@dataclass
class BinaryMLPConfig(Settings):
    """Binary hidden layers with integer hidden weights (H ~ round(N(0, init_std²)))."""

    SECTION: ClassVar[str] = "model"

    hidden: list[int] = setting(factory=lambda: [1035, 1035], ge=1, nonempty=True)
    init_std: float = setting(64.0, gt=0, le=1e9)
    hidden_dtype: str = setting("int16", choices=HIDDEN_DTYPES)


@dataclass
class LocalBinaryConfig(Settings):
    """group_size: units per least-wrong-unit group [G]; robustness: margin / width [rob];
    reinforcement: p_0; clip: |H| bound (absent: none); probability_bits: resolution of
    p_r; error_signal: target (desired s_j = P[y, j]) | difference (only units where the
    label's and the rival's classifier weights differ)."""

    SECTION: ClassVar[str] = "rule"

    group_size: int = setting(115, ge=1)
    robustness: float = setting(0.25, ge=0)
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
    robustness: float = setting(0.25, ge=0)
    reinforcement: float = setting(0.5, ge=0, le=1)
    clip: int | None = setting(None, ge=1)
    probability_bits: int = setting(16, ge=1, le=40)

    def parameters(self) -> CommitteeParameters:
        return CommitteeParameters(self.robustness, self.reinforcement, self.clip, self.probability_bits)


def _step_seed() -> int:
    return int(torch.randint(0, 2**62, (), dtype=torch.int64))


def _reduce(reducer: Reducer):
    return reducer.sum if reducer.world_size > 1 else None


def _layer_metrics(layers: list[BinaryLayer], start_words: list[torch.Tensor], bits: int) -> dict[str, Any]:
    """Mean |H| per layer and the fraction of binary weights whose sign changed this epoch."""
    mean_abs, changed = [], []
    for layer, before in zip(layers, start_words, strict=True):
        mean_abs.append(round(float(layer.hidden.abs().double().mean()), 3))
        flips = np.bitwise_count(to_numpy_words(layer.weight_words) ^ to_numpy_words(before)).sum()
        changed.append(float(flips) / layer.hidden.numel())
    return {"mean_abs_hidden": mean_abs, "sign_change_fraction": changed,
            "reinforcement_probability": [layer.reinforcement_numerator / 2**bits for layer in layers]}


class LocalBinaryLearner:
    """Binary MLP + the local binary rule; state: hidden weights, classifiers, p_r numerators."""

    def __init__(self, layers: list[BinaryLayer], params: LocalBinaryParameters,
                 device: torch.device) -> None:
        self.layers, self.params, self.device = layers, params, device
        self.rule = LocalBinary(params)
        self._set_probabilities(0.0)
        self._epoch_start = [layer.weight_words.clone() for layer in layers]
        self._updates = [0] * len(layers)

    @property
    def model(self) -> SignNetwork:
        """The ±1 sign layers (the typed model its artefacts are made from)."""
        return SignNetwork(tuple(self.layers))

    def _set_probabilities(self, train_accuracy: float) -> None:
        for layer in self.layers:
            p = reinforcement_probability(self.params.reinforcement, train_accuracy, layer.in_features)
            layer.reinforcement_numerator = probability_numerator(p, self.params.probability_bits)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, reducer: Reducer) -> dict[str, float]:
        result = self.rule.step(self.layers, input_signs(x), y.cpu(), seed=_step_seed(),
                                reduce=_reduce(reducer))
        self._updates = [a + b for a, b in zip(self._updates, result.updates, strict=True)]
        return {"loss": float(result.mistakes), "correct": float(result.correct)}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return predict(self.layers, input_signs(x)).to(x.device)

    def end_epoch(self, epoch: int, train_accuracy: float, reducer: Reducer) -> dict[str, Any]:
        metrics = _layer_metrics(self.layers, self._epoch_start, self.params.probability_bits)
        metrics["unit_updates"] = self._updates
        self._set_probabilities(train_accuracy)  # p_r for the next epoch
        self._epoch_start = [layer.weight_words.clone() for layer in self.layers]
        self._updates = [0] * len(self.layers)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"hidden": [layer.hidden.clone() for layer in self.layers],
                "classifier": [layer.classifier.clone() for layer in self.layers],
                "reinforcement_numerator": [layer.reinforcement_numerator for layer in self.layers],
                "epoch_start_words": [w.clone() for w in self._epoch_start]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["hidden"]) != len(self.layers):
            raise ValueError(f"checkpoint has {len(state['hidden'])} layers, the model {len(self.layers)}")
        rows = zip(self.layers, state["hidden"], state["classifier"], state["reinforcement_numerator"],
                   strict=True)
        for layer, hidden, classifier, numerator in rows:
            if hidden.shape != layer.hidden.shape or hidden.dtype != layer.hidden.dtype:
                raise ValueError(f"checkpoint hidden weights {tuple(hidden.shape)} {hidden.dtype} do not "
                                 f"match the model's {tuple(layer.hidden.shape)} {layer.hidden.dtype}")
            layer.hidden = hidden.clone().contiguous()
            layer.weight_words = pack_sign_tensor(layer.hidden)
            layer.classifier = classifier.clone().contiguous()
            layer.classifier_words = pack_sign_tensor(layer.classifier)
            layer.reinforcement_numerator = int(numerator)
        self._epoch_start = [w.clone() for w in state["epoch_start_words"]]


class CommitteeLearner:
    """The single-layer CP+R committee machine baseline; state: hidden weights, p_r
    numerator, and the frozen readout of the "reference" variant."""

    def __init__(self, machine: CommitteeMachine, params: CommitteeParameters, device: torch.device) -> None:
        self.machine, self.params, self.device = machine, params, device
        self.rule = CPR(params)
        self._set_probability(0.0)
        self._epoch_start = [machine.layer.weight_words.clone()]
        self._updates = 0

    @property
    def model(self) -> CommitteeMachine:
        """The committee machine (the typed model its artefacts are made from)."""
        return self.machine

    def _set_probability(self, train_accuracy: float) -> None:
        layer = self.machine.layer
        p = reinforcement_probability(self.params.reinforcement, train_accuracy, layer.in_features)
        layer.reinforcement_numerator = probability_numerator(p, self.params.probability_bits)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, reducer: Reducer) -> dict[str, float]:
        result = self.rule.step(self.machine, input_signs(x), y.cpu(), seed=_step_seed(),
                                reduce=_reduce(reducer))
        self._updates += result.updates[0]
        return {"loss": float(result.mistakes), "correct": float(result.correct)}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return committee_predict(self.machine, input_signs(x)).to(x.device)

    def end_epoch(self, epoch: int, train_accuracy: float, reducer: Reducer) -> dict[str, Any]:
        metrics = _layer_metrics([self.machine.layer], self._epoch_start, self.params.probability_bits)
        metrics["unit_updates"] = [self._updates]
        self._set_probability(train_accuracy)
        self._epoch_start = [self.machine.layer.weight_words.clone()]
        self._updates = 0
        return metrics

    def state_dict(self) -> dict[str, Any]:
        layer = self.machine.layer
        state = {"hidden": layer.hidden.clone(), "reinforcement_numerator": layer.reinforcement_numerator,
                 "epoch_start_words": self._epoch_start[0].clone()}
        if self.machine.readout is not None:
            state["readout"] = self.machine.readout.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        layer = self.machine.layer
        if state["hidden"].shape != layer.hidden.shape or state["hidden"].dtype != layer.hidden.dtype:
            raise ValueError(f"checkpoint hidden weights {tuple(state['hidden'].shape)} do not match the "
                             f"model's {tuple(layer.hidden.shape)}")
        saved = "reference" if "readout" in state else "class_committees"
        if saved != self.machine.variant:
            raise ValueError(f"checkpoint is of the committee variant {saved!r}, the model of "
                             f"{self.machine.variant!r} (rule.variant)")
        if "readout" in state:
            self.machine.set_readout(state["readout"].clone())
        layer.hidden = state["hidden"].clone().contiguous()
        layer.weight_words = pack_sign_tensor(layer.hidden)
        layer.reinforcement_numerator = int(state["reinforcement_numerator"])
        self._epoch_start = [state["epoch_start_words"].clone()]


def _in_features(input_shape: tuple[int, ...]) -> int:
    return int(np.prod(input_shape))


def build_local_binary_learner(model_cfg: BinaryMLPConfig, rule_cfg: LocalBinaryConfig,
                               input_shape: tuple[int, ...], num_classes: int,
                               device: torch.device) -> LocalBinaryLearner:
    if any(width % rule_cfg.group_size for width in model_cfg.hidden):
        # as the reference code: every layer splits into whole groups of G units
        raise ConfigError(f"rule.group_size={rule_cfg.group_size} must divide every hidden width "
                          f"{model_cfg.hidden}")
    layers = init_layers([_in_features(input_shape), *model_cfg.hidden], num_classes,
                         model_cfg.init_std, model_cfg.hidden_dtype, clip=rule_cfg.clip)
    return LocalBinaryLearner(layers, rule_cfg.parameters(), device)


def build_cpr_learner(model_cfg: CommitteeConfig, rule_cfg: CPRConfig, input_shape: tuple[int, ...],
                      num_classes: int, device: torch.device) -> CommitteeLearner:
    if rule_cfg.variant == "class_committees" and model_cfg.hidden % (model_cfg.committee_size * num_classes):
        raise ConfigError(f"model.hidden={model_cfg.hidden} must be a multiple of committee_size × classes "
                          f"= {model_cfg.committee_size * num_classes} (rule.variant = \"class_committees\")")
    if model_cfg.hidden % model_cfg.committee_size:
        raise ConfigError(f"model.hidden={model_cfg.hidden} must be a multiple of committee_size "
                          f"= {model_cfg.committee_size}")
    machine = init_committee(_in_features(input_shape), model_cfg.hidden, model_cfg.committee_size,
                             num_classes, model_cfg.init_std, model_cfg.hidden_dtype, clip=rule_cfg.clip,
                             variant=rule_cfg.variant)
    return CommitteeLearner(machine, rule_cfg.parameters(), device)


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
