"""Feed-forward binary layers and networks. A layer with no quantizer *is* the float layer
(one family, variants by composition)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn

__all__ = ["BinaryLinear", "BinaryConv2d", "mlp", "convnet", "summary"]


class BinaryLinear(nn.Linear):
    """y = x · Q_w(W)ᵀ + b, with an optional weight quantizer Q_w (e.g. ``BinarySign()``).

    Args:
        in_features, out_features: sizes; x: (batch, in_features).
        weight_quantizer: module mapping latent weights to the weights used (None: float).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 weight_quantizer: nn.Module | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.weight_quantizer = weight_quantizer

    def effective_weight(self) -> torch.Tensor:
        if self.weight_quantizer is None:
            return self.weight
        return self.weight_quantizer(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.effective_weight(), self.bias)


class BinaryConv2d(nn.Conv2d):
    """y = Q_w(W) ⋆ x + b (2-D convolution), with an optional weight quantizer Q_w.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, bias: as ``nn.Conv2d``;
            x: (batch, in_channels, height, width).
        weight_quantizer: module mapping latent weights to the weights used (None: float).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1,
                 padding: int = 1, bias: bool = False, weight_quantizer: nn.Module | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.weight_quantizer = weight_quantizer

    def effective_weight(self) -> torch.Tensor:
        if self.weight_quantizer is None:
            return self.weight
        return self.weight_quantizer(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


def convnet(
    input_shape: tuple[int, int, int],
    stages: list[list[int]],
    hidden: int,
    out_features: int,
    *,
    weight_quantizer: Callable[[], nn.Module] | None = None,
    activation: Callable[[], nn.Module] = nn.ReLU,
    batch_norm: bool = True,
    pool: str = "avg",
    dropout: float = 0.0,
    quantize_first: bool = False,
    quantize_last: bool = False,
) -> nn.Sequential:
    """A small VGG-style convnet (Lu & Sengupta 2020's VGG, scaled down)::

        per stage s, per width c in stages[s]:  Conv3×3(c, no bias) → [BatchNorm2d]
                                                 → (last conv of the stage: 2×2 pool) → activation
        Flatten → Linear(hidden) → [BatchNorm1d] → activation → Linear(out) → [BatchNorm1d, no affine]

    Pooling sits *before* the activation (average pooling of the pre-activations is what an
    integrate-and-fire layer can compute); ``pool="max"`` exists for ordinary training only
    (such a network cannot be converted to spikes).

    Args:
        input_shape: (channels, height, width) of one sample; height and width must stay
            ≥ 1 after one 2×2 pool per stage.
        stages: conv widths per stage, e.g. ``[[32], [64, 64]]``.
        hidden: width of the first of the two linear layers.
        weight_quantizer, activation: classes or factories, called once per layer.
        quantize_first, quantize_last: binary weights also in the first conv / the last linear.
    """
    if pool not in ("avg", "max"):
        raise ValueError(f"pool={pool!r}; valid: avg, max")
    channels, height, width = input_shape
    layers: list[nn.Module] = []
    first = True
    for stage in stages:
        for position, out_channels in enumerate(stage):
            quantize = weight_quantizer is not None and (quantize_first or not first)
            layers.append(BinaryConv2d(channels, out_channels, 3, padding=1, bias=not batch_norm,
                                       weight_quantizer=weight_quantizer() if quantize and weight_quantizer
                                       else None))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            if position == len(stage) - 1:
                layers.append(nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            layers.append(activation())
            if dropout:
                layers.append(nn.Dropout(dropout))
            channels, first = out_channels, False
    if height < 1 or width < 1:
        raise ValueError(f"{len(stages)} pooling stages are too many for a "
                         f"{input_shape[1]}×{input_shape[2]} input")
    features = channels * height * width
    layers.append(nn.Flatten())
    layers.append(BinaryLinear(features, hidden, bias=not batch_norm,
                               weight_quantizer=weight_quantizer() if weight_quantizer is not None else None))
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden))
    layers.append(activation())
    if dropout:
        layers.append(nn.Dropout(dropout))
    quantize = weight_quantizer is not None and quantize_last
    layers.append(BinaryLinear(hidden, out_features, bias=not batch_norm,
                               weight_quantizer=weight_quantizer() if quantize and weight_quantizer
                               else None))
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features, affine=False))
    return nn.Sequential(*layers)


def mlp(
    in_features: int,
    hidden: list[int],
    out_features: int,
    *,
    weight_quantizer: Callable[[], nn.Module] | None = None,
    activation: Callable[[], nn.Module] = nn.ReLU,
    batch_norm: bool = True,
    dropout: float = 0.0,
    quantize_first: bool = True,
    quantize_last: bool = True,
) -> nn.Sequential:
    """Flatten → [Linear → BatchNorm → activation → Dropout] per hidden layer → Linear → BatchNorm.

    ``weight_quantizer``/``activation`` are classes (or factories), called once per layer. The output
    BatchNorm (no affine) gives the binary output layer a well-scaled logit range.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    sizes = [in_features, *hidden]
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        quantize = weight_quantizer is not None and (quantize_first or index > 0)
        layers.append(BinaryLinear(fan_in, fan_out, bias=not batch_norm,
                                   weight_quantizer=weight_quantizer() if quantize and weight_quantizer
                                   else None))
        if batch_norm:
            layers.append(nn.BatchNorm1d(fan_out))
        layers.append(activation())
        if dropout:
            layers.append(nn.Dropout(dropout))
    quantize = weight_quantizer is not None and quantize_last
    layers.append(BinaryLinear(sizes[-1], out_features, bias=not batch_norm,
                               weight_quantizer=weight_quantizer() if quantize and weight_quantizer
                               else None))
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features, affine=False))
    return nn.Sequential(*layers)


def summary(model: nn.Module, input_shape: tuple[int, ...] | None = None,
            learning_memory: dict[str, Any] | None = None) -> list[dict]:
    """Per layer: parameters, binary vs float, memory (packed bits for binary weights),
    and multiply-accumulates (XNOR-popcount ops for binary layers) per sample
    (convolutions: weights × output positions, which needs ``input_shape``, one sample's
    (channels, height, width); without it a convolution counts its weights once).
    With ``learning_memory`` (a learner's ``learning_memory()``, as meta.json and summary.json
    hold it: rows ``{"parameter", "bits_per_synapse", ...}``) each row also gives the bits of
    learning state per synapse its training keeps (``learning_bits_per_synapse``: 96 for a
    float weight under Adam, 33 under Bop, ...) and their total in bytes
    (``learning_memory_bytes``); None for a layer the table does not name (not trained).
    The spiking twin, with spikes and synaptic operations, is
    :func:`binlearn.spiking.synops.spiking_summary`."""
    trained = {row["parameter"]: int(row["bits_per_synapse"])
               for row in (learning_memory or {}).get("layers", [])}
    rows = []
    macs = _conv_macs(model, input_shape) if input_shape is not None else {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear | nn.Conv2d):
            continue
        weights = module.weight.numel()
        binary = getattr(module, "weight_quantizer", None) is not None
        if isinstance(module, nn.Linear):
            size_in, size_out = module.in_features, module.out_features
        else:
            size_in, size_out = module.in_channels, module.out_channels
        rows.append({
            "layer": name, "in": size_in, "out": size_out,
            "weights": weights, "binary": binary,
            "memory_bytes": (weights + 7) // 8 + 4 if binary else 4 * weights,
            "macs": macs.get(name, weights),
        })
        if learning_memory is not None:
            bits = trained.get(f"{name}.weight")
            rows[-1].update(learning_bits_per_synapse=bits,
                            learning_memory_bytes=None if bits is None else (weights * bits + 7) // 8)
    return rows


@torch.no_grad()
def _conv_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Multiply-accumulates per sample of each Conv2d (weights × output positions)."""
    found: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            def record(m: nn.Module, _inputs: object, out: torch.Tensor, n: str = name) -> None:
                found[n] = cast(torch.Tensor, m.weight).numel() * out.shape[-1] * out.shape[-2]

            hooks.append(module.register_forward_hook(record))
    training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return found
