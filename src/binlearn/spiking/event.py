"""Event-driven simulation of converted binary MLPs on the CPU (one numba kernel, packed spikes).

For each image the whole T-step simulation runs inside one compiled loop, its state in
cache: the first layer (float synapses) integrates its constant current (the image, direct
encoding, computed once by the same dense op as :func:`~binlearn.spiking.simulate.simulate`)
and packs its spikes as bits (:mod:`binlearn.binary.packing`: unit 64·w + i at bit i of
word w). Each **binary** hidden layer (±1 synapses) takes its current from the packed
spikes by an AND-popcount over its packed +1 weights:

    I_t[n] = Σ_{i : s_t[i] = 1} W[n, i] + bias[n]
           = 2·popcount(s_t AND w⁺_n) − popcount(s_t) + bias[n]      (w⁺_n: bit 1 where W = +1)

— an exact integer, so the current equals the dense float32 product bit for bit and the
spikes are identical to :func:`simulate`'s. The float output integrator adds one float32
weight row per spike of the last hidden layer (walking the set bits): its sums may differ
from the dense product in the last bit (summation order), never the spikes. The IF steps
are the float32 operations of :func:`~binlearn.spiking.functional.if_step`.

Covers [float first layer] → [binary hidden layers]+ → [float output] networks of
``Flatten`` / ``Linear`` synapses (:func:`supports_events`); for others use :func:`simulate`.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange
from numba.typed import List
from torch import nn

from binlearn.binary.kernels.numba_cpu import popcount64, trailing_zeros64
from binlearn.binary.packing import pack_bits, to_numpy_words
from binlearn.spiking.functional import check_init
from binlearn.spiking.network import SpikingLayer, SpikingNetwork, weighted_op
from binlearn.spiking.neurons import IF
from binlearn.spiking.simulate import SimulationResult

__all__ = ["simulate_events", "supports_events"]


@njit(inline="always")
def _fire(v, threshold, subtract):  # pragma: no cover - numba
    if v > threshold:
        return (v - threshold if subtract else np.float32(0.0)), True
    return v, False


@njit(parallel=True, cache=True)
def _simulate(first_current, first_threshold, hidden_words, hidden_bias, hidden_threshold, out_rows,
              out_bias, steps, subtract, delay, init_half, first_counts, hidden_counts, outputs
              ):  # pragma: no cover - numba
    batch, units0 = first_current.shape
    layers = len(hidden_words)
    classes = out_rows.shape[1]
    for b in prange(batch):
        v0 = np.zeros(units0, np.float32)
        if init_half:
            for n in range(units0):
                v0[n] = first_threshold[n] / np.float32(2)
        words0 = (units0 + 63) // 64
        new0 = np.zeros(words0, np.uint64)
        old0 = np.zeros(words0, np.uint64)
        membranes = List()
        new_words = List()
        old_words = List()
        for j in range(layers):
            units = hidden_words[j].shape[0]
            v = np.zeros(units, np.float32)
            if init_half:
                for n in range(units):
                    v[n] = hidden_threshold[j][n] / np.float32(2)
            membranes.append(v)
            new_words.append(np.zeros((units + 63) // 64, np.uint64))
            old_words.append(np.zeros((units + 63) // 64, np.uint64))
        v_out = np.zeros(classes, np.float32)
        total = np.zeros(classes, np.float32)
        for t in range(steps):
            for k in range(words0):
                new0[k] = 0
            for n in range(units0):
                v0[n], fired = _fire(v0[n] + first_current[b, n], first_threshold[n], subtract)
                if fired:
                    new0[n >> 6] |= np.uint64(1) << np.uint64(n & 63)
                    first_counts[b, n] += 1
            for j in range(layers):
                if delay:
                    source = old0 if j == 0 else old_words[j - 1]
                else:
                    source = new0 if j == 0 else new_words[j - 1]
                source = source.copy()  # a private copy: no aliasing with what the loop writes
                weights = hidden_words[j]
                bias = hidden_bias[j]
                threshold = hidden_threshold[j]
                counts = hidden_counts[j]
                active = np.int64(0)
                for k in range(source.shape[0]):
                    active += np.int64(popcount64(source[k]))
                target = new_words[j]
                for k in range(target.shape[0]):
                    target[k] = 0
                v = membranes[j]
                for n in range(weights.shape[0]):
                    positive = np.int64(0)
                    for k in range(source.shape[0]):
                        positive += np.int64(popcount64(source[k] & weights[n, k]))
                    current = np.float32(2 * positive - active) + bias[n]
                    v[n], fired = _fire(v[n] + current, threshold[n], subtract)
                    if fired:
                        target[n >> 6] |= np.uint64(1) << np.uint64(n & 63)
                        counts[b, n] += 1
            last = (old_words[layers - 1] if delay else new_words[layers - 1])
            for c in range(classes):
                total[c] = 0
            for k in range(last.shape[0]):
                word = last[k]
                while word:
                    i = k * 64 + np.int64(trailing_zeros64(word))
                    for c in range(classes):
                        total[c] += out_rows[i, c]
                    word &= word - np.uint64(1)
            for c in range(classes):
                v_out[c] = v_out[c] + (total[c] + out_bias[c])
                outputs[t, b, c] = v_out[c]
            if delay:
                old0[:] = new0
                for j in range(layers):
                    old_words[j][:] = new_words[j]


def supports_events(network: SpikingNetwork) -> bool:
    """True for [float first layer] → [binary hidden layers]+ → [output] of Flatten/Linear synapses."""
    layers = list(network)
    linear = all(isinstance(op, nn.Flatten | nn.Linear) for layer in layers for op in layer.synapse)
    return linear and len(layers) >= 3 and all(layer.binary for layer in layers[1:-1])


def _threshold(layer: SpikingLayer) -> torch.Tensor:
    if not isinstance(layer.neuron, IF):
        raise ValueError(f"layer {layer.name} does not spike")
    return layer.neuron.threshold


def _vector(values: torch.Tensor | None, size: int) -> np.ndarray:
    if values is None:
        return np.zeros(size, np.float32)
    return np.ascontiguousarray(values.reshape(-1).expand(size).numpy(), np.float32)


@torch.no_grad()
def simulate_events(network: SpikingNetwork, x: torch.Tensor, steps: int, *, delay: bool = True,
                    init: str = "zero") -> SimulationResult:
    """:func:`~binlearn.spiking.simulate.simulate` with the direct encoding, event-driven.

    Args and result as :func:`simulate`; the network must be on the CPU and pass
    :func:`supports_events`, and its IF layers must share one reset. Hidden spikes equal
    :func:`simulate`'s exactly.
    """
    if network.device.type != "cpu" or not supports_events(network):
        raise ValueError("simulate_events runs CPU networks of a float first layer, binary hidden layers "
                         "and an output, with Flatten/Linear synapses; use simulate")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    check_init(init)
    layers = list(network)
    resets = {layer.neuron.reset for layer in layers[:-1]}
    if len(resets) != 1:
        raise ValueError("simulate_events needs one reset for all IF layers")
    units = network.units()
    batch = x.shape[0]
    first = np.ascontiguousarray(layers[0].current(x.float()).reshape(batch, -1).numpy(), np.float32)
    hidden_words, hidden_bias, hidden_threshold, hidden_counts = List(), List(), List(), List()
    for layer, size in zip(layers[1:-1], units[1:-1], strict=True):
        plus = pack_bits(weighted_op(layer.synapse).weight > 0)  # bit 1 where the synapse is +1
        hidden_words.append(np.ascontiguousarray(to_numpy_words(plus)))
        hidden_bias.append(_vector(layer.bias, size))
        hidden_threshold.append(_vector(_threshold(layer), size))
        hidden_counts.append(np.zeros((batch, size), np.float32))
    output = layers[-1]
    out_rows = np.ascontiguousarray(weighted_op(output.synapse).weight.T.numpy(), np.float32)
    first_counts = np.zeros((batch, units[0]), np.float32)
    outputs = np.zeros((steps, batch, units[-1]), np.float32)
    _simulate(first, _vector(_threshold(layers[0]), units[0]), hidden_words, hidden_bias,
              hidden_threshold, out_rows, _vector(output.bias, units[-1]), steps, resets.pop() == "subtract",
              delay, init == "half", first_counts, hidden_counts, outputs)
    shapes = network.shapes()[1:-1]
    counts = [torch.from_numpy(c).reshape(batch, *shape)
              for c, shape in zip([first_counts, *hidden_counts], shapes, strict=True)]
    return SimulationResult(torch.from_numpy(outputs), counts, None)
