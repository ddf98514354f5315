"""Feed-forward binary layers and networks. A layer with no quantizer *is* the float layer
(one family, variants by composition)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["BinaryLinear", "mlp", "summary"]


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
                                   weight_quantizer=weight_quantizer() if quantize else None))
        if batch_norm:
            layers.append(nn.BatchNorm1d(fan_out))
        layers.append(activation())
        if dropout:
            layers.append(nn.Dropout(dropout))
    quantize = weight_quantizer is not None and quantize_last
    layers.append(BinaryLinear(sizes[-1], out_features, bias=not batch_norm,
                               weight_quantizer=weight_quantizer() if quantize else None))
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features, affine=False))
    return nn.Sequential(*layers)


def summary(model: nn.Module) -> list[dict]:
    """Per layer: parameters, binary vs float, memory (packed bits for binary weights),
    and multiply-accumulates (XNOR-popcount ops for binary layers) per sample."""
    rows = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        weights = module.weight.numel()
        binary = getattr(module, "weight_quantizer", None) is not None
        rows.append({
            "layer": name, "in": module.in_features, "out": module.out_features,
            "weights": weights, "binary": binary,
            "memory_bytes": (weights + 7) // 8 + 4 if binary else 4 * weights,
            "macs": weights,
        })
    return rows
