"""Conversion of STE-trained feed-forward networks into spiking networks.

The source is an ``nn.Sequential`` of blocks ``[Flatten | AvgPool2d]* → Linear/Conv2d (float
or α·sign(w)) → [BatchNorm] → [AvgPool2d] → activation``, the last block without an
activation (:func:`binlearn.nn.mlp`, :func:`binlearn.nn.convnet`). Each block computes, per
output unit o (a feature, or a channel of a convolution),

    z_o = c_o · (W x)_o + d_o,    a = g(z)

where W is the float weight or sign(w), c folds α (per layer or per unit) and the batch
norm's γ/σ, and d folds the bias, μ and β (eval-mode statistics). The spiking layer keeps W
(±1 for binary layers) and moves c, d and the layer's activation scale λ into its constant
current and threshold. With λ_{l−1} the value one input spike stands for (1 for the image):

* ReLU (λ_l from calibration: max or a percentile of the activations on training images)
  or QCFS (λ_l its trained threshold):
  - float layer (the first layer, or float weights): W' = W·c·λ_{l−1}/λ_l, bias d/λ_l, θ = 1
    (the threshold-balanced network of Diehl et al. 2015 / Rueckauer et al. 2017);
  - binary layer: W' = sign(c)·sign(w) (still ±1), bias d/(|c|·λ_{l−1}),
    θ = λ_l/(|c|·λ_{l−1}) — α, the batch norm and the balancing scale are one threshold per
    unit, as Lu & Sengupta 2020 fold them.
* Heaviside (binary activations; λ_l = 1): the unit is 1 iff z > 0, an IF neuron with the
  same condition at T = 1. θ is found *exactly* from the source's own modules: for a float
  layer fed the image, the largest float32 u = (W x)_o with H(tail(u)) = 0 (a bisection over
  float32 — the tail is monotone in u); for a binary layer fed 0/1 spikes, the largest
  integer m = (sign(w)·s)_o in [−K, K] whose tail is 0 (the tail evaluated at α·m, as the
  packed export does). Units with c < 0 get their row negated. So at T = 1, membrane 0 and
  no layer delay, the hidden spikes are the source's activations bit for bit (with pooling
  in the block, θ = −d/(|c|λ_{l−1}) in real arithmetic instead).
* The output block becomes a non-spiking Integrator with W' = W·c·λ_{l−1} and bias d: its
  accumulated current after t steps is t times the source's logits when the hidden rates
  are exact. The first and the last layers always have float synapses, as in the paper.

Refused, with a one-line :class:`ConversionError` naming why: max pooling, sign / hardtanh /
other activations (IF neurons emit only 0/1 spikes), a block without activation before the
output, a unit whose scale c is 0.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from binlearn.binary.packed_format import PackedFormatError
from binlearn.binary.quantizers import Heaviside, Sign, sign
from binlearn.errors import BinlearnError
from binlearn.nn.activations import QCFS
from binlearn.nn.fold import integer_step, tail_bits
from binlearn.spiking.calibrate import calibrate
from binlearn.spiking.network import SpikingLayer, SpikingNetwork
from binlearn.spiking.neurons import IF, Integrator

__all__ = ["ConversionError", "convert", "source_blocks", "SourceBlock"]

_NEVER = 1e30  # a threshold no current reaches (a unit that is always 0)


class ConversionError(BinlearnError, ValueError):
    """A source network that cannot be converted, explained in one line."""


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_IDENTITY = (nn.Dropout, nn.Identity)  # identities at inference
_ACTIVATIONS = (nn.ReLU, QCFS, Heaviside)


@dataclass
class SourceBlock:
    """One block of the source: pre-ops, the weighted op, the modules after it, the activation."""

    op: nn.Linear | nn.Conv2d
    pre: list[nn.Module] = field(default_factory=list)
    tail: list[nn.Module] = field(default_factory=list)  # norm / pool after op, in order
    activation: nn.Module | None = None

    @property
    def norm(self) -> nn.BatchNorm1d | nn.BatchNorm2d | None:
        return next((m for m in self.tail if isinstance(m, _NORMS)), None)

    @property
    def pooled(self) -> bool:
        return any(isinstance(m, nn.AvgPool2d) for m in self.tail)

    @property
    def binary(self) -> bool:
        return getattr(self.op, "weight_quantizer", None) is not None


def _refuse_module(module: nn.Module, where: str) -> ConversionError:
    if isinstance(module, nn.MaxPool2d | nn.MaxPool1d | nn.AdaptiveMaxPool2d):
        return ConversionError(f"{where}: max pooling cannot be converted (integrate-and-fire neurons sum "
                               "their inputs; train the source with average pooling, model.pool = \"avg\")")
    if isinstance(module, Sign):
        return ConversionError(f"{where}: sign activations are ±1, spikes are 0/1; train the source with "
                               "model.activations = \"heaviside\"")
    if isinstance(module, nn.Hardtanh | nn.Tanh | nn.Sigmoid | nn.LeakyReLU | nn.GELU):
        return ConversionError(f"{where}: {type(module).__name__} activations cannot be converted "
                               "(an IF neuron's rate is a ReLU); use relu, qcfs or heaviside")
    return ConversionError(f"{where}: a {type(module).__name__} cannot be converted to spiking layers")


def source_blocks(model: nn.Module) -> list[SourceBlock]:
    """The source's blocks (see the module docstring); ConversionError for what cannot convert."""
    if not isinstance(model, nn.Sequential):
        raise ConversionError(f"only feed-forward nn.Sequential sources convert, not {type(model).__name__}")
    blocks: list[SourceBlock] = []
    pending: list[nn.Module] = []
    for index, module in enumerate(model):
        where = f"module {index} ({type(module).__name__})"
        if isinstance(module, _IDENTITY):
            continue
        if isinstance(module, nn.Linear | nn.Conv2d):
            if isinstance(module, nn.Conv2d) and (module.padding_mode != "zeros" or module.groups != 1):
                raise ConversionError(f"{where}: only zero-padded, ungrouped convolutions convert")
            if blocks and blocks[-1].activation is None:
                raise ConversionError(f"{where}: two weighted layers with no activation between them")
            blocks.append(SourceBlock(module, pre=pending))
            pending = []
        elif isinstance(module, nn.Flatten | nn.AvgPool2d) and (not blocks
                                                                 or blocks[-1].activation is not None):
            pending.append(module)
        elif not blocks:
            raise _refuse_module(module, where)
        elif isinstance(module, (*_NORMS, nn.AvgPool2d)) and blocks[-1].activation is None:
            if isinstance(module, _NORMS) and blocks[-1].norm is not None:
                raise ConversionError(f"{where}: two batch norms in one layer")
            blocks[-1].tail.append(module)
        elif isinstance(module, _ACTIVATIONS) and blocks[-1].activation is None:
            blocks[-1].activation = module
        else:
            raise _refuse_module(module, where)
    if not blocks:
        raise ConversionError("the source has no Linear or Conv2d layer")
    if pending:
        raise ConversionError("the source ends with pooling or flattening after its last layer")
    if blocks[-1].activation is not None:
        raise ConversionError("the source's last layer has an activation; its logits must be linear")
    return blocks


def _effective_weight(op: nn.Linear | nn.Conv2d) -> torch.Tensor:
    quantizer = getattr(op, "weight_quantizer", None)
    return op.weight.detach() if quantizer is None else quantizer(op.weight).detach()


def _unit_affine(block: SourceBlock) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(W, c, d) with z = c·(W x) + d per output unit: W = sign(w) for binary layers, else the
    float weight; c, d of shape (out,) (α, bias and eval-mode batch norm folded)."""
    op = block.op
    weight = op.weight.detach().float()
    out = weight.shape[0]
    if block.binary:
        alpha = op.weight_quantizer.alpha(weight)  # type: ignore[union-attr,operator]
        scale = torch.as_tensor(alpha, dtype=torch.float32).reshape(-1).expand(out).clone()
        weight = sign(weight)
    else:
        scale = torch.ones(out)
    shift = torch.zeros(out) if op.bias is None else op.bias.detach().float().clone()
    norm = block.norm
    if norm is not None:
        if norm.running_var is None or norm.running_mean is None:
            raise ConversionError("a batch norm without running statistics (track_running_stats=False) "
                                  "cannot be folded into weights and thresholds")
        gain = 1 / torch.sqrt(norm.running_var.float() + norm.eps)
        if norm.affine:
            gain = gain * norm.weight.detach().float()
        offset = -norm.running_mean.float() * gain
        if norm.affine:
            offset = offset + norm.bias.detach().float()
        scale, shift = scale * gain, shift * gain + offset
    return weight, scale, shift


def _unit_view(values: torch.Tensor, op: nn.Module) -> torch.Tensor:
    return values.reshape(-1, 1, 1) if isinstance(op, nn.Conv2d) else values.reshape(-1)


def _rows(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (weight.dim() - 1)))


def _synapse(block: SourceBlock, weight: torch.Tensor) -> nn.Sequential:
    op = block.op
    if isinstance(op, nn.Conv2d):
        conv: Any = op  # torch types a built conv's sizes as tuple[int, ...]; its constructor wants pairs
        new: nn.Module = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                                   padding=conv.padding, dilation=conv.dilation, bias=False)
    else:
        new = nn.Linear(op.in_features, op.out_features, bias=False)
    new.weight.data = weight.float().clone().contiguous()
    pools = [copy.deepcopy(m) for m in block.tail if isinstance(m, nn.AvgPool2d)]
    return nn.Sequential(*[copy.deepcopy(m) for m in block.pre], new, *pools)


# --------------------------------------------------------------- exact Heaviside thresholds
def _ordered(values: np.ndarray) -> np.ndarray:
    bits = values.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _from_ordered(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys < 0, (-keys) | 0x80000000, keys).astype(np.uint32)
    return bits.view(np.float32)


@torch.no_grad()
def _float_thresholds(fires: Callable[[torch.Tensor], torch.Tensor], out: int) -> torch.Tensor:
    """Per unit, the largest float32 u with fires(u) false, for a predicate monotone
    (false … false true … true) in u; ±1e30 for a unit that always / never fires."""
    low = np.full(out, _ordered(np.array([-_NEVER]))[0])
    high = np.full(out, _ordered(np.array([_NEVER]))[0])
    lowest = fires(torch.from_numpy(_from_ordered(low).copy()))
    highest = fires(torch.from_numpy(_from_ordered(high).copy()))
    while True:
        gap = high - low
        if (gap <= 1).all():
            break
        middle = low + gap // 2
        value = fires(torch.from_numpy(_from_ordered(middle).copy())).numpy()
        high = np.where(value & (gap > 1), middle, high)
        low = np.where(~value & (gap > 1), middle, low)
    threshold = torch.from_numpy(_from_ordered(low).copy())
    threshold[lowest] = -_NEVER
    threshold[~highest] = _NEVER
    return threshold


def _tail_fires(block: SourceBlock, signs: torch.Tensor, scale: torch.Tensor | None
                ) -> Callable[[torch.Tensor], torch.Tensor]:
    """u (out,) → H(tail(signs·u·scale)) > 0: does each unit fire for the drive u?"""

    def fires(u: torch.Tensor) -> torch.Tensor:
        h = (u * signs) if scale is None else (u * signs) * scale
        h = h.reshape(1, -1, *([1, 1] if isinstance(block.op, nn.Conv2d) else []))
        if block.op.bias is not None:
            h = h + _unit_view(block.op.bias.detach().float(), block.op)
        for module in block.tail:
            h = module(h)
        return (h.reshape(-1) > 0)

    return fires


@torch.no_grad()
def _integer_thresholds(block: SourceBlock, signs: torch.Tensor, alpha: torch.Tensor,
                        fan_in: int) -> torch.Tensor | None:
    """Binary layer on 0/1 spikes: per unit the largest integer m in [−K, K] that does not
    fire (m = (signs·sign(w)·s)), from the one fold of :mod:`binlearn.nn.fold`; None when some
    unit's firing set is not an up-set of m (a decreasing or non-monotone tail)."""
    bits = tail_bits(block.tail, signs * alpha, block.op.bias, fan_in, conv=isinstance(block.op, nn.Conv2d))
    try:
        threshold, flip = integer_step(bits, fan_in)
    except PackedFormatError:  # a unit whose bit changes more than once
        return None
    if flip.any():  # fires below a threshold, not above: no IF neuron in this orientation
        return None
    return torch.from_numpy((threshold - 1).astype(np.float32))  # −K − 1: always, K: never


# ---------------------------------------------------------------------------- convert
@torch.no_grad()
def convert(model: nn.Module, calibration_images: torch.Tensor | None = None, *,
            percentile: float | None = 99.7, reset: str = "subtract", batch_size: int = 500
            ) -> SpikingNetwork:
    """Convert an STE-trained source into a :class:`~binlearn.spiking.network.SpikingNetwork`.

    Args:
        model: the source ``nn.Sequential`` (copied to the CPU; the original is untouched).
        calibration_images: (n, *input_shape) training images for threshold balancing (needed
            when the source has ReLU layers; also gives the input shape).
        percentile: p in (0, 100) of each ReLU layer's activations, or None / 100 for the max.
        reset: the IF neurons' reset, ``"subtract"`` | ``"zero"``.
        batch_size: images per calibration pass.
    Returns:
        the spiking network on the CPU (``.to(device)`` to move it).
    Raises:
        ConversionError: a source that cannot be converted (see the module docstring).
    """
    source = copy.deepcopy(model).cpu().float().eval()
    blocks = source_blocks(source)
    relus = [b.activation for b in blocks if isinstance(b.activation, nn.ReLU)]
    if calibration_images is None:
        raise ConversionError("conversion needs calibration images (the input shape, and the ReLU "
                              "layers' activation statistics)")
    images = calibration_images.detach().float().cpu()
    scales = iter(calibrate(source, relus, images, percentile=percentile, batch_size=batch_size)
                  if relus else [])
    layers: list[SpikingLayer] = []
    previous_value = 1.0  # the source activation one input "spike" stands for (the image itself)
    previous_binary_spikes = False  # inputs are exactly the source's 0/1 activations
    for index, block in enumerate(blocks):
        name = ("output" if block.activation is None
                else f"{'conv' if isinstance(block.op, nn.Conv2d) else 'fc'}{index + 1}")
        weight, scale, shift = _unit_affine(block)
        activation = block.activation
        binary_synapse = block.binary and index > 0 and activation is not None
        if activation is None:
            float_weight = _effective_weight(block.op).float() if block.binary else weight
            unit_scale = (scale / _alpha_vector(block, weight.shape[0])) if block.binary else scale
            layers.append(SpikingLayer(name, _synapse(block, float_weight * _rows(unit_scale * previous_value,
                                                                                   weight)),
                                       Integrator(), bias=_unit_view(shift, block.op)))
            continue
        if isinstance(activation, Heaviside):
            layers.append(_heaviside_layer(name, block, index, weight, scale, shift, previous_value,
                                           previous_binary_spikes, reset))
            previous_value, previous_binary_spikes = 1.0, True
            continue
        level = float(activation.threshold.detach()) if isinstance(activation, QCFS) else next(scales)
        if not level > 0:
            raise ConversionError(f"layer {index + 1}: its activation scale λ = {level:.4g} is not positive "
                                  "(a layer that never activates on the calibration images)")
        if binary_synapse:
            if bool((scale == 0).any()):
                raise ConversionError(f"layer {index + 1}: a unit with zero scale (batch-norm γ = 0) cannot "
                                      "keep ±1 synapses")
            magnitude = scale.abs() * previous_value
            layers.append(SpikingLayer(name, _synapse(block, weight * _rows(sign(scale), weight)),
                                       IF(_unit_view(level / magnitude, block.op), reset),
                                       bias=_unit_view(shift / magnitude, block.op), binary=True,
                                       spike_value=level))
        else:
            float_weight = _effective_weight(block.op).float()
            unit_scale = scale / _alpha_vector(block, weight.shape[0]) if block.binary else scale
            layers.append(SpikingLayer(name, _synapse(block, float_weight * _rows(unit_scale * previous_value
                                                                                   / level, weight)),
                                       IF(_unit_view(torch.ones(weight.shape[0]), block.op), reset),
                                       bias=_unit_view(shift / level, block.op), spike_value=level))
        previous_value, previous_binary_spikes = level, False
    return SpikingNetwork(layers, tuple(images.shape[1:]))


def _alpha_vector(block: SourceBlock, out: int) -> torch.Tensor:
    alpha = block.op.weight_quantizer.alpha(block.op.weight.detach().float())  # type: ignore[union-attr,operator]
    return torch.as_tensor(alpha, dtype=torch.float32).reshape(-1).expand(out)


def _heaviside_layer(name: str, block: SourceBlock, index: int, weight: torch.Tensor, scale: torch.Tensor,
                     shift: torch.Tensor, previous_value: float, binary_spikes: bool, reset: str
                     ) -> SpikingLayer:
    """A Heaviside block as IF neurons firing iff the source's unit is 1 (module docstring)."""
    signs = torch.where(scale < 0, -1.0, 1.0)
    out = weight.shape[0]
    exact_pre = all(isinstance(m, nn.Flatten) for m in block.pre) and not block.pooled
    if block.binary and index > 0:
        threshold = None
        if exact_pre and binary_spikes:
            fan_in = weight[0].numel()
            threshold = _integer_thresholds(block, signs, _alpha_vector(block, out), fan_in)
        if threshold is None:  # real-arithmetic fold: c·λ·m + d > 0
            if bool((scale == 0).any()):
                raise ConversionError(f"layer {index + 1}: a unit with zero scale (batch-norm γ = 0) cannot "
                                      "keep ±1 synapses")
            threshold = -shift / (scale.abs() * previous_value)
        return SpikingLayer(name, _synapse(block, weight * _rows(signs, weight)),
                            IF(_unit_view(threshold, block.op), reset), binary=True)
    float_weight = _effective_weight(block.op).float()
    if exact_pre and index == 0:
        threshold = _float_thresholds(_tail_fires(block, signs, None), out)
        return SpikingLayer(name, _synapse(block, float_weight * _rows(signs, weight)),
                            IF(_unit_view(threshold, block.op), reset))
    unit_scale = scale / _alpha_vector(block, out) if block.binary else scale
    return SpikingLayer(name, _synapse(block, float_weight * _rows(unit_scale * previous_value, weight)),
                        IF(_unit_view(-shift, block.op), reset))
