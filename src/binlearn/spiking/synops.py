"""Spikes and synaptic operations per inference, counted from the spikes (event-driven).

A spike of unit i entering layer l costs one synaptic operation per synapse it drives:

    synops_l = Σ_i n_i · fanout_l(i)

with n_i the spikes unit i emitted during the T steps and fanout_l(i) its number of
weights in layer l's weighted op (``out_features`` for a dense layer; for a convolution,
output channels × the kernel positions that cover the pixel, fewer at a padded border).
Pooling inside a synapse is not counted (it is the same for the source). Each emitted
spike is counted with its fan-out, including spikes of the last step that a delayed
network would deliver one step later.

With the direct encoding the first layer's input is the image, a current: it is computed
once per inference (the current is constant), ``input_macs`` multiply-accumulates.
With rate coding the input pixels spike and the first layer is counted like the others.
The source network's multiply-accumulates per inference (``source_macs``, per layer) sit
beside the counts, so the energy proxy of T steps can be compared with one dense pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from binlearn.spiking.network import SimulationResult, SpikingLayer, SpikingNetwork, weighted_op

__all__ = ["fanout", "layer_macs", "spiking_summary", "totals"]


@torch.no_grad()
def fanout(layer: SpikingLayer, input_shape: tuple[int, ...]) -> torch.Tensor:
    """fanout(i) for every input unit of ``layer``: (*input_shape,), float.

    Computed as ∂/∂x Σ op(x) with the weighted op's weights set to 1 (each input unit's
    number of weights), through the ops before it (a Flatten keeps the count per unit).
    """
    op = weighted_op(layer.synapse)
    ones = torch.ones_like(op.weight)
    with torch.enable_grad():
        x = torch.zeros((1, *input_shape), device=op.weight.device, requires_grad=True)
        h = x
        for module in layer.synapse:
            if module is op:
                break
            h = module(h)
        if isinstance(op, nn.Conv2d):
            out = F.conv2d(h, ones, stride=op.stride, padding=op.padding, dilation=op.dilation)
        else:
            out = F.linear(h, ones)
        out.sum().backward()
    assert x.grad is not None
    return x.grad[0]


@torch.no_grad()
def layer_macs(layer: SpikingLayer, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one dense pass of ``layer``'s weighted op, as the source
    computes it: weights × output positions for a convolution (padding included, as
    :func:`binlearn.nn.summary` counts), the weights of a dense layer."""
    op = weighted_op(layer.synapse)
    if isinstance(op, nn.Linear):
        return op.weight.numel()
    h = torch.zeros((1, *input_shape), device=op.weight.device)
    for module in layer.synapse:
        h = module(h)
        if module is op:
            break
    return op.weight.numel() * h.shape[-1] * h.shape[-2]


def spiking_summary(network: SpikingNetwork, result: SimulationResult) -> list[dict]:
    """Per layer, per inference (averaged over the simulated batch): the spiking twin of
    :func:`binlearn.nn.summary`.

    Rows: ``layer``, ``units``, ``binary`` (±1 synapses), ``source_macs`` (one dense pass),
    ``input_spikes`` (spikes arriving at the layer), ``synaptic_ops`` (event-driven, see the
    module docstring; for the first layer under the direct encoding: its MACs, computed once),
    ``spikes`` (emitted; None for the output integrator), ``firing_rate`` (spikes per unit
    per step; None for the output).
    """
    shapes = network.shapes()
    steps = result.outputs.shape[0]
    batch = result.outputs.shape[1]
    rows = []
    for index, layer in enumerate(network):
        macs = layer_macs(layer, shapes[index])
        if index == 0:
            arriving = result.input_spikes
        else:
            arriving = result.spike_counts[index - 1]
        if arriving is None:  # direct encoding: the image is a current, computed once
            synops, in_spikes = float(macs), None
        else:
            per_unit = fanout(layer, shapes[index])
            synops = float((arriving * per_unit).sum()) / batch
            in_spikes = float(arriving.sum()) / batch
        units = math.prod(shapes[index + 1])
        emitted = float(result.spike_counts[index].sum()) / batch if layer.spiking else None
        rows.append({
            "layer": layer.name, "units": units, "binary": layer.binary, "source_macs": macs,
            "input_spikes": in_spikes, "synaptic_ops": synops, "spikes": emitted,
            "firing_rate": None if emitted is None else emitted / (units * steps),
        })
    return rows


def totals(rows: list[dict]) -> dict[str, float]:
    """Whole-network figures per inference from :func:`spiking_summary` rows: ``spikes``
    (hidden layers), ``synaptic_ops`` (event-driven, all layers fed by spikes), ``input_macs``
    (the first layer's dense pass under the direct encoding, else 0), ``source_macs``."""
    direct = rows[0]["input_spikes"] is None
    return {
        "spikes": sum(r["spikes"] for r in rows if r["spikes"] is not None),
        "synaptic_ops": sum(r["synaptic_ops"] for r in (rows[1:] if direct else rows)),
        "input_macs": rows[0]["synaptic_ops"] if direct else 0.0,
        "source_macs": sum(r["source_macs"] for r in rows),
    }
