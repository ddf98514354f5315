"""The STE back-prop baseline wired as a learner: ``[model] kind = "mlp"``, ``[rule] name = "ste"``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from binlearn.binary import BinarySign, Heaviside, Sign
from binlearn.experiment.config import ConfigError, register_model_config, register_rule_config
from binlearn.experiment.learner import Reducer
from binlearn.experiment.learners.optimizer_state import load_optimizer_state
from binlearn.experiment.registry import register_learner
from binlearn.nn import QCFS, BinaryConv2d, BinaryLinear, convnet, mlp
from binlearn.rules import STE

__all__ = ["MLPConfig", "ConvNetConfig", "STEConfig", "STELearner", "build_mlp", "build_convnet"]

_WEIGHTS = ("float", "binary")
_ACTIVATIONS = ("relu", "hardtanh", "sign", "heaviside", "qcfs")


@dataclass
class MLPConfig:
    """A feed-forward MLP. ``weights``: float | binary (α·sign(w), α = mean|w| per layer).
    ``activations``: relu | hardtanh (float), sign | heaviside (binary, STE gradient) or qcfs
    (the quantisation-clip-floor-shift activation of Bu et al. 2022 with ``qcfs_levels`` L and
    a trained λ starting at ``qcfs_threshold``; a source for low-latency spiking conversion)."""

    hidden: list[int] = field(default_factory=lambda: [256])
    weights: str = "binary"
    activations: str = "relu"
    batch_norm: bool = True
    dropout: float = 0.0
    binary_first_layer: bool = True
    binary_last_layer: bool = True
    weight_scale: str = "mean"
    """α of binary weights: mean (one per layer) | unit (one per output unit) | none (α = 1)."""
    qcfs_levels: int = 4
    qcfs_threshold: float = 2.0

    def __post_init__(self) -> None:
        _check_qcfs(self.qcfs_levels, self.qcfs_threshold)
        if self.weight_scale not in BinarySign.SCALES:
            raise ConfigError(f"model.weight_scale={self.weight_scale!r}; "
                              f"valid: {', '.join(BinarySign.SCALES)}")
        if self.weights not in _WEIGHTS:
            raise ConfigError(f"model.weights={self.weights!r}; valid: {', '.join(_WEIGHTS)}")
        if self.activations not in _ACTIVATIONS:
            raise ConfigError(f"model.activations={self.activations!r}; valid: {', '.join(_ACTIVATIONS)}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"model.hidden must be a non-empty list of positive sizes, got {self.hidden}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")


def _check_qcfs(levels: int, threshold: float) -> None:
    if levels < 1:
        raise ConfigError(f"model.qcfs_levels must be >= 1, got {levels}")
    if not threshold > 0:
        raise ConfigError(f"model.qcfs_threshold must be > 0, got {threshold}")


@dataclass
class ConvNetConfig:
    """A small VGG-style convnet (:func:`~binlearn.nn.convnet`): 3×3 convolutions without bias
    in ``stages`` (a 2×2 pool closes each stage, placed before the activation), then two linear
    layers (``hidden`` units, then the classes). ``pool``: avg (convertible to spikes) | max.
    ``weights``, ``weight_scale``, ``activations``, ``qcfs_*`` as for the MLP; first and last
    layers stay float unless ``binary_first_layer`` / ``binary_last_layer``."""

    stages: list[list[int]] = field(default_factory=lambda: [[32], [64]])
    hidden: int = 256
    weights: str = "binary"
    weight_scale: str = "unit"
    activations: str = "relu"
    batch_norm: bool = True
    pool: str = "avg"
    dropout: float = 0.0
    binary_first_layer: bool = False
    binary_last_layer: bool = False
    qcfs_levels: int = 4
    qcfs_threshold: float = 2.0

    def __post_init__(self) -> None:
        _check_qcfs(self.qcfs_levels, self.qcfs_threshold)
        if self.weight_scale not in BinarySign.SCALES:
            raise ConfigError(f"model.weight_scale={self.weight_scale!r}; "
                              f"valid: {', '.join(BinarySign.SCALES)}")
        if self.weights not in _WEIGHTS:
            raise ConfigError(f"model.weights={self.weights!r}; valid: {', '.join(_WEIGHTS)}")
        if self.activations not in _ACTIVATIONS:
            raise ConfigError(f"model.activations={self.activations!r}; valid: {', '.join(_ACTIVATIONS)}")
        if self.pool not in ("avg", "max"):
            raise ConfigError(f"model.pool={self.pool!r}; valid: avg, max")
        if not self.stages or any(not stage or any(c < 1 for c in stage) for stage in self.stages):
            raise ConfigError(f"model.stages must be non-empty lists of positive widths, got {self.stages}")
        if self.hidden < 1:
            raise ConfigError(f"model.hidden must be >= 1, got {self.hidden}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class STEConfig:
    """Optimizer for the latent weights: adam | sgd; ``lr_decay`` multiplies lr every epoch."""

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    clip_latent: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"rule.optimizer={self.optimizer!r}; valid: adam, sgd")
        if not self.lr > 0:
            raise ConfigError(f"rule.lr must be > 0, got {self.lr}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"rule.lr_decay must be in (0, 1], got {self.lr_decay}")


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


class STELearner:
    """Model + STE rule + optimizer. Gradients are averaged over ranks before each step."""

    def __init__(self, model: nn.Module, cfg: STEConfig) -> None:
        self.model, self.cfg, self.rule = model, cfg, STE()
        params = model.parameters()
        if cfg.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                             weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, cfg.lr_decay)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, reducer: Reducer) -> dict[str, float]:
        self.model.train()
        loss, logits = self.rule.loss(self.model, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for param in self.model.parameters():
            if param.grad is not None:
                param.grad = reducer.mean(param.grad)
        self.optimizer.step()
        if self.cfg.clip_latent:
            with torch.no_grad():
                for module in self.model.modules():
                    binary = isinstance(module, BinaryLinear | BinaryConv2d) and module.weight_quantizer
                    if binary:
                        module.weight.clamp_(-1, 1)
        return {"loss": float(loss.detach()) * len(y), "correct": float((logits.argmax(1) == y).sum())}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(x).argmax(1)

    def end_epoch(self, epoch: int, train_accuracy: float, reducer: Reducer) -> dict[str, Any]:
        # BatchNorm running statistics are per rank: average them so every rank evaluates
        # (and rank 0 saves) the same model.
        for name, buffer in self.model.named_buffers():
            if buffer.is_floating_point() and "running" in name:
                buffer.copy_(reducer.mean(buffer.clone()))
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        return {"lr": lr}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        load_optimizer_state(self.optimizer, state["optimizer"])  # the config's lr, the saved moments
        self.scheduler.load_state_dict(state["scheduler"])
        # The schedule of this config over the epochs done: lr · γ^k, multiplied out step by
        # step as ExponentialLR does (so an unchanged config resumes bit for bit).
        self.scheduler.base_lrs = [self.cfg.lr] * len(self.optimizer.param_groups)
        self.scheduler.gamma = self.cfg.lr_decay
        for group in self.optimizer.param_groups:
            lr = self.cfg.lr
            for _ in range(self.scheduler.last_epoch):
                lr *= self.cfg.lr_decay
            group["lr"] = lr
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

def build_ste_learner(model_cfg: MLPConfig, rule_cfg: STEConfig, input_shape: tuple[int, ...],
                      num_classes: int, device: torch.device) -> STELearner:
    return STELearner(build_mlp(model_cfg, input_shape, num_classes).to(device), rule_cfg)


def build_convnet_learner(model_cfg: ConvNetConfig, rule_cfg: STEConfig, input_shape: tuple[int, ...],
                          num_classes: int, device: torch.device) -> STELearner:
    return STELearner(build_convnet(model_cfg, input_shape, num_classes).to(device), rule_cfg)


register_model_config("mlp", MLPConfig)
register_model_config("convnet", ConvNetConfig)
register_rule_config("ste", STEConfig)
register_learner("mlp", "ste", build_ste_learner)
register_learner("convnet", "ste", build_convnet_learner)
