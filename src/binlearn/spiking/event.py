"""Event-driven simulation of converted binary MLPs on the CPU (packed spikes, popcounts).

Two paths (``simulate_events(mode=...)``), both with the spikes of
:func:`~binlearn.spiking.simulate.simulate` exactly.

``mode="packed"`` (default, the faster): each time step runs over the whole batch. The
first layer's IF step packs its spikes s ∈ {0, 1} as bits; a binary layer's current comes
from the XNOR-popcount GEMM of :func:`binlearn.binary.kernels.numba_cpu.xnor_popcount_dense`
(bit 1 = +1, so the packed spikes are the ±1 vector 2s − 1)::

    Σ_k s_k·W[n, k] = (Σ_k (2s_k − 1)·W[n, k] + Σ_k W[n, k]) / 2

— an exact integer, + bias in float32 as the dense op; the output layer runs its own dense
op on the 0/1 spikes, so the outputs equal :func:`simulate`'s bit for bit.

``mode="rows"``: for each image the whole T-step simulation runs inside one compiled loop, its state in
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

from binlearn.binary.kernels.numba_cpu import popcount64, trailing_zeros64, xnor_popcount_dense
from binlearn.binary.packing import pack_bits, to_numpy_words
from binlearn.spiking.functional import check_init
from binlearn.spiking.network import SimulationResult, SpikingLayer, SpikingNetwork, weighted_op
from binlearn.spiking.neurons import IF

__all__ = ["simulate_events", "supports_events", "MODES"]

MODES = ("packed", "rows")
"""``simulate_events`` paths: a batch-wide XNOR-popcount GEMM per step, or one image at a time."""


@njit(inline="always")
def _fire(v, threshold, subtract):  # pragma: no cover - numba
    if v > threshold:
        return (v - threshold if subtract else np.float32(0.0)), True
    return v, False


@njit(inline="always")
def _if_row(v, current, threshold, subtract, counts, spikes):  # pragma: no cover - numba
    """One IF step of one image's units, branch-free and with the float32 ops of
    :func:`~binlearn.spiking.functional.if_step`: v' = v + I; s = [v' > θ]; v' − s·θ or v'·(1 − s).
    ``spikes`` may be ``current`` (element n is read before it is written)."""
    for n in range(v.shape[0]):
        integrated = v[n] + current[n]
        fired = np.float32(integrated > threshold[n])
        if subtract:
            v[n] = integrated - fired * threshold[n]
        else:
            v[n] = integrated * (np.float32(1.0) - fired)
        spikes[n] = fired
        counts[n] += fired


@njit(inline="always")
def _pack_row(spikes, words):  # pragma: no cover - numba
    """words = the 0/1 spikes packed as bits (unit 64·k + i at bit i of word k), padding 0."""
    units = spikes.shape[0]
    for k in range(words.shape[0]):
        start = k * 64
        acc = np.uint64(0)
        for i in range(min(64, units - start)):
            acc |= np.uint64(spikes[start + i] > np.float32(0.5)) << np.uint64(i)
        words[k] = acc


@njit(parallel=True, cache=True)
def _fire_first(v, current, threshold, subtract, words, counts):  # pragma: no cover - numba
    """One IF step of the first layer over the batch; its spikes packed (bit 1 = spike)."""
    for b in prange(v.shape[0]):
        spikes = np.empty(v.shape[1], np.float32)  # a row in L1: the 0/1 spikes are only packed
        _if_row(v[b], current[b], threshold, subtract, counts[b], spikes)
        _pack_row(spikes, words[b])


@njit(parallel=True, cache=True)
def _fire_binary(v, dots, weight_sums, bias, threshold, subtract, words, counts):  # pragma: no cover - numba
    """One IF step of a ±1 layer from dots[b, n] = Σ_k (2s_k − 1)·W[n, k] (the XNOR-popcount GEMM):
    Σ_k s_k·W[n, k] = (dots[b, n] + Σ_k W[n, k]) / 2, an exact (even-sum) integer, + bias in float32."""
    batch, units = v.shape
    for b in prange(batch):
        current = np.empty(units, np.float32)
        row = dots[b]
        for n in range(units):
            current[n] = np.float32((np.int64(row[n]) + weight_sums[n]) >> 1) + bias[n]
        _if_row(v[b], current, threshold, subtract, counts[b], current)  # spikes over the used current
        _pack_row(current, words[b])


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


def _initial(threshold: np.ndarray, batch: int, half: bool) -> np.ndarray:
    """v(0): 0 or θ/2 in float32, as :func:`~binlearn.spiking.functional.initial_membrane`."""
    membrane = np.zeros((batch, threshold.shape[0]), np.float32)
    return membrane + threshold / np.float32(2) if half else membrane


PACKED_CHUNK = 128
"""Images per chunk of the packed path: a chunk's state stays in the cache for all T steps."""


@njit(cache=True)
def _unpack_rows(words, spikes):  # pragma: no cover - numba
    """spikes[b, n] = bit n of words[b] as 0/1 float32."""
    units = spikes.shape[1]
    full = units // 64
    for b in range(spikes.shape[0]):
        row = spikes[b]
        for k in range(full):  # whole words: a fixed 64-bit loop that LLVM vectorises
            word = words[b, k]
            for i in range(64):
                row[k * 64 + i] = np.float32((word >> np.uint64(i)) & np.uint64(1))
        for n in range(full * 64, units):
            row[n] = np.float32((words[b, n >> 6] >> np.uint64(n & 63)) & np.uint64(1))


def _simulate_packed(network: SpikingNetwork, first: np.ndarray, steps: int, subtract: bool, delay: bool,
                     half: bool) -> tuple[torch.Tensor, list[np.ndarray]]:
    """All T steps for one chunk of images at a time (its state in the cache), each step over
    the chunk: the first layer's IF step, then per ±1 layer one XNOR-popcount GEMM of the
    packed spikes (:func:`xnor_popcount_dense`) and its IF step. The last hidden layer's
    packed spikes are kept for every step; the output layer then runs its own dense op on
    them as 0/1 over the whole batch (the op :func:`simulate` runs, so the outputs are its
    outputs)."""
    layers = list(network)
    units = network.units()
    batch = first.shape[0]
    thresholds = [_vector(_threshold(layer), size) for layer, size in zip(layers[:-1], units, strict=False)]
    counts = [np.zeros((batch, size), np.float32) for size in units[:-1]]
    hidden = []
    for layer, size in zip(layers[1:-1], units[1:-1], strict=True):
        weight = weighted_op(layer.synapse).weight
        words = np.ascontiguousarray(to_numpy_words(pack_bits(weight > 0)))  # bit 1 where the synapse is +1
        sums = (2 * (weight > 0).sum(1) - weight.shape[1]).numpy().astype(np.int64)  # Σ_k W[n, k]
        hidden.append((words, sums, _vector(layer.bias, size)))
    last_words = (units[-2] + 63) // 64
    history = np.zeros((steps + 1, batch, last_words), np.uint64)  # [t + 1]: the last layer's spikes at t
    for start in range(0, batch, PACKED_CHUNK):
        stop = min(batch, start + PACKED_CHUNK)
        size = stop - start
        current = np.ascontiguousarray(first[start:stop])
        membranes = [_initial(threshold, size, half) for threshold in thresholds]
        chunk_counts = [np.zeros((size, n), np.float32) for n in units[:-1]]
        # two sets of packed spikes, swapped after each step (the delay reads the last step's)
        buffers = [[np.zeros((size, (n + 63) // 64), np.uint64) for n in units[:-1]] for _ in range(2)]
        dots = [np.empty((size, n), np.int32) for n in units[1:-1]]
        for t in range(steps):
            new, old = buffers
            _fire_first(membranes[0], current, thresholds[0], subtract, new[0], chunk_counts[0])
            for j, (words, sums, bias) in enumerate(hidden, start=1):
                source = (old if delay else new)[j - 1]
                xnor_popcount_dense(source, words, units[j - 1], out=dots[j - 1])
                _fire_binary(membranes[j], dots[j - 1], sums, bias, thresholds[j], subtract, new[j],
                             chunk_counts[j])
            history[t + 1, start:stop] = new[-1]
            buffers.reverse()
        for total, part in zip(counts, chunk_counts, strict=True):
            total[start:stop] = part
    output = layers[-1]
    v_out = torch.zeros((batch, units[-1]))
    last = np.empty((batch, units[-2]), np.float32)
    outputs = []
    for t in range(steps):
        _unpack_rows(history[t if delay else t + 1], last)
        v_out = v_out + output.current(torch.from_numpy(last))
        outputs.append(v_out.clone())
    return torch.stack(outputs), counts


@torch.no_grad()
def simulate_events(network: SpikingNetwork, x: torch.Tensor, steps: int, *, delay: bool = True,
                    init: str = "zero", mode: str = "packed") -> SimulationResult:
    """:func:`~binlearn.spiking.simulate.simulate` with the direct encoding, event-driven.

    Args and result as :func:`simulate`; the network must be on the CPU and pass
    :func:`supports_events`, and its IF layers must share one reset. Hidden spikes equal
    :func:`simulate`'s exactly.

    Args:
        mode: ``"packed"`` (default, the faster: each step over the whole batch, a ±1 layer's
            current by the XNOR-popcount GEMM of the packed spikes, ``Σ_k s_k·W[n, k] =
            (Σ_k (2s_k − 1)·W[n, k] + Σ_k W[n, k]) / 2``; the outputs are :func:`simulate`'s
            bit for bit) | ``"rows"`` (one image at a time in one numba kernel, AND-popcounts
            and float row adds for the output, whose last bits may differ).
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; valid: {', '.join(MODES)}")
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
    subtract = resets.pop() == "subtract"
    units = network.units()
    batch = x.shape[0]
    first = np.ascontiguousarray(layers[0].current(x.float()).reshape(batch, -1).numpy(), np.float32)
    shapes = network.shapes()[1:-1]
    if mode == "packed":
        outputs, all_counts = _simulate_packed(network, first, steps, subtract, delay, init == "half")
        counts = [torch.from_numpy(c).reshape(batch, *shape)
                  for c, shape in zip(all_counts, shapes, strict=True)]
        return SimulationResult(outputs, counts, None, "events")
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
    rows_outputs = np.zeros((steps, batch, units[-1]), np.float32)
    _simulate(first, _vector(_threshold(layers[0]), units[0]), hidden_words, hidden_bias,
              hidden_threshold, out_rows, _vector(output.bias, units[-1]), steps, subtract,
              delay, init == "half", first_counts, hidden_counts, rows_outputs)
    counts = [torch.from_numpy(c).reshape(batch, *shape)
              for c, shape in zip([first_counts, *hidden_counts], shapes, strict=True)]
    return SimulationResult(torch.from_numpy(rows_outputs), counts, None, "events")
