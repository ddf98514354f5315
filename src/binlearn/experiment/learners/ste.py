"""The STE back-prop baseline for the gradient learner: ``[model] kind = "mlp"`` or
``"convnet"``, ``[rule] name = "ste"``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch
from torch import nn

from binlearn.binary import BinarySign, Heaviside, Sign
from binlearn.experiment.config import (
    RESUME_NEXT_EPOCH,
    ConfigError,
    ScheduleConfig,
    Settings,
    register_model_config,
    register_rule_config,
    setting,
)
from binlearn.experiment.learner import Reducer, StepStats
from binlearn.experiment.learners.gradient import GradientLearner, ParameterGroup
from binlearn.experiment.registry import register_learner
from binlearn.nn import QCFS, BinaryConv2d, BinaryLinear, convnet, mlp
from binlearn.rules import STE

__all__ = ["MLPConfig", "ConvNetConfig", "STEConfig", "STEOptimizerConfig", "STEGradients", "ste_learner",
           "STELearner", "build_mlp", "build_convnet"]

_WEIGHTS = ("float", "binary")
_ACTIVATIONS = ("relu", "hardtanh", "sign", "heaviside", "qcfs")


@dataclass
class MLPConfig(Settings):
    """A feed-forward MLP. ``weights``: float | binary (α·sign(w), α = mean|w| per layer).
    ``activations``: relu | hardtanh (float), sign | heaviside (binary, STE gradient) or qcfs
    (the quantisation-clip-floor-shift activation of Bu et al. 2022 with ``qcfs_levels`` L and
    a trained λ starting at ``qcfs_threshold``; a source for low-latency spiking conversion)."""

    SECTION: ClassVar[str] = "model"

    hidden: list[int] = setting(factory=lambda: [256], ge=1, nonempty=True)
    weights: str = setting("binary", choices=_WEIGHTS)
    activations: str = setting("relu", choices=_ACTIVATIONS)
    batch_norm: bool = True
    dropout: float = setting(0.0, ge=0, lt=1)
    binary_first_layer: bool = True
    binary_last_layer: bool = True
    weight_scale: str = setting("mean", choices=BinarySign.SCALES)
    """α of binary weights: mean (one per layer) | unit (one per output unit) | none (α = 1)."""
    qcfs_levels: int = setting(4, ge=1, le=65536)
    qcfs_threshold: float = setting(2.0, gt=0)


@dataclass
class ConvNetConfig(Settings):
    """A small VGG-style convnet (:func:`~binlearn.nn.convnet`): 3×3 convolutions without bias
    in ``stages`` (a 2×2 pool closes each stage, placed before the activation), then two linear
    layers (``hidden`` units, then the classes). ``pool``: avg (convertible to spikes) | max.
    ``weights``, ``weight_scale``, ``activations``, ``qcfs_*`` as for the MLP; first and last
    layers stay float unless ``binary_first_layer`` / ``binary_last_layer``."""

    SECTION: ClassVar[str] = "model"

    stages: list[list[int]] = setting(factory=lambda: [[32], [64]], ge=1, nonempty=True)
    hidden: int = setting(256, ge=1)
    weights: str = setting("binary", choices=_WEIGHTS)
    weight_scale: str = setting("unit", choices=BinarySign.SCALES)
    activations: str = setting("relu", choices=_ACTIVATIONS)
    batch_norm: bool = True
    pool: str = setting("avg", choices=("avg", "max"))
    dropout: float = setting(0.0, ge=0, lt=1)
    binary_first_layer: bool = False
    binary_last_layer: bool = False
    qcfs_levels: int = setting(4, ge=1, le=65536)
    qcfs_threshold: float = setting(2.0, gt=0)

    def check(self) -> None:
        if any(not stage for stage in self.stages):
            raise ConfigError(f"model.stages must be non-empty lists of positive widths, got {self.stages}")


@dataclass
class STEConfig(Settings):
    """The STE estimator: back-prop through the quantizers (straight-through gradients);
    ``clip_latent`` keeps the latent weights of binary layers in [−1, 1] after each step."""

    SECTION: ClassVar[str] = "rule"

    clip_latent: bool = True


@dataclass
class STEOptimizerConfig(Settings):
    """The optimizer of the latent weights: ``name`` adam | sgd (``momentum``: sgd only)."""

    SECTION: ClassVar[str] = "optimizer"

    name: str = setting("adam", choices=("adam", "sgd"))
    lr: float = setting(1e-3, gt=0, resume=RESUME_NEXT_EPOCH)
    momentum: float = setting(0.9, ge=0, lt=1, resume=RESUME_NEXT_EPOCH)
    weight_decay: float = setting(0.0, ge=0, resume=RESUME_NEXT_EPOCH)


def _activation(cfg: MLPConfig | ConvNetConfig) -> Callable[[], nn.Module]:
    if cfg.activations == "qcfs":
        return partial(QCFS, cfg.qcfs_levels, cfg.qcfs_threshold)
    return {"relu": nn.ReLU, "hardtanh": nn.Hardtanh, "sign": Sign, "heaviside": Heaviside}[cfg.activations]


def build_mlp(cfg: MLPConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    return mlp(
        math.prod(input_shape), list(cfg.hidden), num_classes,
        weight_quantizer=partial(BinarySign, cfg.weight_scale) if cfg.weights == "binary" else None,
        activation=_activation(cfg), batch_norm=cfg.batch_norm, dropout=cfg.dropout,
        quantize_first=cfg.binary_first_layer, quantize_last=cfg.binary_last_layer,
    )


def build_convnet(cfg: ConvNetConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    if len(input_shape) != 3:
        raise ConfigError(f"model.kind = \"convnet\" needs image samples (channels, height, width), "
                          f"got shape {input_shape}")
    if min(input_shape[1:]) >> len(cfg.stages) < 1:
        raise ConfigError(f"model.stages: {len(cfg.stages)} 2×2 pools are too many for "
                          f"{input_shape[1]}×{input_shape[2]} images")
    return convnet(
        (input_shape[0], input_shape[1], input_shape[2]), [list(s) for s in cfg.stages], cfg.hidden,
        num_classes,
        weight_quantizer=partial(BinarySign, cfg.weight_scale) if cfg.weights == "binary" else None,
        activation=_activation(cfg), batch_norm=cfg.batch_norm, pool=cfg.pool, dropout=cfg.dropout,
        quantize_first=cfg.binary_first_layer, quantize_last=cfg.binary_last_layer,
    )


class STEGradients:
    """A feed-forward net and the STE rule as the gradient learner's
    :class:`~binlearn.experiment.learners.gradient.GradientSource`: back-propagation through
    the quantizers. Every parameter is float (binary layers keep latent float weights, the
    quantizer makes their signs), so all go to the float optimizer (``optimizer.name``: adam |
    sgd); ``clip_latent`` keeps the latent weights of binary layers in [−1, 1] after each step.
    """

    lr_metric = "trained"

    def __init__(self, model: nn.Module, cfg: STEConfig | None = None,
                 optimizer: STEOptimizerConfig | None = None) -> None:
        self.model, self.cfg, self.rule = model, cfg or STEConfig(), STE()
        self.optimizer_cfg = optimizer or STEOptimizerConfig()

    def parameter_groups(self) -> list[ParameterGroup]:
        return [ParameterGroup(list(self.model.parameters()), False, {})]  # latent weights are floats

    def build_optimizer(self, key: str, groups: list[dict[str, Any]],
                        scales: list[Any]) -> torch.optim.Optimizer:
        optimizer = self.optimizer_cfg
        if optimizer.name == "adam":
            return torch.optim.Adam(groups, lr=optimizer.lr, weight_decay=optimizer.weight_decay)
        return torch.optim.SGD(groups, lr=optimizer.lr, momentum=optimizer.momentum,
                               weight_decay=optimizer.weight_decay)

    def estimate(self, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[dict[str, torch.Tensor], Callable[[], StepStats]]:
        self.model.train()
        loss, logits = self.rule.loss(self.model, x, y)
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        gradients = {name: param.grad for name, param in self.model.named_parameters()
                     if param.grad is not None}

        def stats() -> StepStats:
            return {"loss": float(loss.detach()) * len(y), "correct": float((logits.argmax(1) == y).sum())}

        return gradients, stats

    def after_step(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        if self.cfg.clip_latent:
            with torch.no_grad():
                for module in self.model.modules():
                    if (isinstance(module, BinaryLinear | BinaryConv2d)
                            and module.weight_quantizer is not None):
                        module.weight.clamp_(-1, 1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(x).argmax(1)

    def end_epoch(self, reducer: Reducer) -> dict[str, Any]:
        # BatchNorm running statistics are per rank: average them so every rank evaluates
        # (and rank 0 saves) the same model.
        for name, buffer in self.model.named_buffers():
            if buffer.is_floating_point() and "running" in name:
                buffer.copy_(reducer.mean(buffer.clone()))
        return {}


def ste_learner(model: nn.Module, cfg: STEConfig | None = None, optimizer: STEOptimizerConfig | None = None,
                schedule: ScheduleConfig | None = None) -> GradientLearner:
    """The gradient learner of a feed-forward net trained by STE back-propagation."""
    return GradientLearner(STEGradients(model, cfg, optimizer), schedule)


STELearner = ste_learner
"""The name of the STE learner before there was one gradient learner: builds a
:class:`~binlearn.experiment.learners.gradient.GradientLearner` (it is no class to test with
``isinstance``: ask ``learner.model`` its type)."""


def build_ste_learner(model_cfg: MLPConfig, rule_cfg: STEConfig, input_shape: tuple[int, ...],
                      num_classes: int, device: torch.device, optimizer: STEOptimizerConfig | None = None,
                      schedule: ScheduleConfig | None = None) -> GradientLearner:
    model = build_mlp(model_cfg, input_shape, num_classes).to(device)
    return ste_learner(model, rule_cfg, optimizer, schedule)


def mlp_memory(cfg: MLPConfig, input_shape: tuple[int, ...], num_classes: int) -> int:
    """Bytes of an MLP's float32 weights, gradients and two optimizer moments (Adam)."""
    sizes = [math.prod(input_shape), *cfg.hidden, num_classes]
    return 16 * sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))


def build_convnet_learner(model_cfg: ConvNetConfig, rule_cfg: STEConfig, input_shape: tuple[int, ...],
                          num_classes: int, device: torch.device, optimizer: STEOptimizerConfig | None = None,
                          schedule: ScheduleConfig | None = None) -> GradientLearner:
    model = build_convnet(model_cfg, input_shape, num_classes).to(device)
    return ste_learner(model, rule_cfg, optimizer, schedule)


register_model_config("mlp", MLPConfig)
register_model_config("convnet", ConvNetConfig)
register_rule_config("ste", STEConfig, optimizer=STEOptimizerConfig)
register_learner("mlp", "ste", build_ste_learner, memory=mlp_memory)
register_learner("convnet", "ste", build_convnet_learner)
