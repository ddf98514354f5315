"""The STE back-prop baseline wired as a learner: ``[model] kind = "mlp"``, ``[rule] name = "ste"``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from binlearn.binary import BinarySign, Heaviside, Sign
from binlearn.experiment.config import ConfigError, register_model_config, register_rule_config
from binlearn.experiment.learner import Reducer
from binlearn.experiment.learners.optimizer_state import load_optimizer_state
from binlearn.experiment.registry import register_learner
from binlearn.nn import BinaryLinear, mlp
from binlearn.rules import STE

__all__ = ["MLPConfig", "STEConfig", "STELearner", "build_mlp"]

_WEIGHTS = ("float", "binary")
_ACTIVATIONS = ("relu", "hardtanh", "sign", "heaviside")


@dataclass
class MLPConfig:
    """A feed-forward MLP. ``weights``: float | binary (α·sign(w), α = mean|w| per layer).
    ``activations``: relu | hardtanh (float) or sign | heaviside (binary, STE gradient)."""

    hidden: list[int] = field(default_factory=lambda: [256])
    weights: str = "binary"
    activations: str = "relu"
    batch_norm: bool = True
    dropout: float = 0.0
    binary_first_layer: bool = True
    binary_last_layer: bool = True

    def __post_init__(self) -> None:
        if self.weights not in _WEIGHTS:
            raise ConfigError(f"model.weights={self.weights!r}; valid: {', '.join(_WEIGHTS)}")
        if self.activations not in _ACTIVATIONS:
            raise ConfigError(f"model.activations={self.activations!r}; valid: {', '.join(_ACTIVATIONS)}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"model.hidden must be a non-empty list of positive sizes, got {self.hidden}")
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


def build_mlp(cfg: MLPConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    activation = {"relu": nn.ReLU, "hardtanh": nn.Hardtanh, "sign": Sign, "heaviside": Heaviside}
    return mlp(
        math.prod(input_shape), list(cfg.hidden), num_classes,
        weight_quantizer=BinarySign if cfg.weights == "binary" else None,
        activation=activation[cfg.activations], batch_norm=cfg.batch_norm, dropout=cfg.dropout,
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
                    if isinstance(module, BinaryLinear) and module.weight_quantizer is not None:
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


register_model_config("mlp", MLPConfig)
register_rule_config("ste", STEConfig)
register_learner("mlp", "ste", build_ste_learner)
