"""Binary-activation EP networks read as event-driven spiking networks.

A fully connected energy network with binary weights (α_l · W_l, W_l ∈ {−1, +1}) and
:class:`~binlearn.energy.neurons.BinaryAccumulator` neurons (Laydevant et al. 2021) already
*is* a spiking network; one relaxation step is one time step:

    I_l(t) = α_l Σ_{j : a_{l−1,j}(t−1) = 1} W_l[:, j] + b_l                (from below)
           + α_{l+1} Σ_{k : a_{l+1,k}(t−1) = 1} W_{l+1}[k, :]               (from above)
    v_l(t) = clamp((1 − γ) v_l(t−1) + γ I_l(t), 0, 1)                      (membrane)
    a_l(t) = H(v_l(t) − θ) ∈ {0, 1}        (spike; H(0) = 0: fires on v > θ, no reset)

The membrane v is the accumulator, the spike a the neuron's Heaviside activation, and a
layer's input current the sum of the ±1 weight rows of the neurons that spiked at the
previous step — one row add per spike and neighbouring layer (:func:`event_currents`,
the row-add kernel :func:`~binlearn.binary.kernels.sparse.sparse_binary_product` EP relaxes
with). The first layer's term from below is the clamped image as a constant current
(direct encoding), computed once per inference. The neuron leaks (factor 1 − γ), is
clamped to [0, 1] and is *not* reset after a spike: it keeps spiking while v > θ. Under the
``"even_odd"`` schedule the second half-sweep's layers read the first half-sweep's spikes
of the same step.

Nothing is simulated twice: :func:`simulate_ep` runs :func:`binlearn.energy.relax.relax`
(the same dynamics EP trains and evaluates with) and reads every step through its
``record`` hook. The prediction at step t is what the relaxation would predict stopped at
t (``"relaxation"`` readout: the output group with the most spikes at t, ties broken by
the group's mean membrane), so at t = T free steps it is the relaxation's prediction, bit
for bit; the ``"spike_count"`` readout instead ranks groups by their spikes summed over
steps 1 … t (ties broken the same way).

Synaptic operations are counted from the spikes (event-driven): a spike of layer l at a
step that a neighbour reads costs one row add of that neighbour's width, so

    synops_l = Σ_{t read} n_l(t) · fan_out_l,   fan_out_l = |layer l+1| + |layer l−1|

(the input layer is clamped and receives nothing; the output layer has nothing above).
Under the synchronous schedule the spikes read are those of steps 0 … T−1 (step 0: the
initial state's, every accumulator starts at 1 > θ, so every neuron spikes once at the
start); under even/odd the first half-sweep's layers are read at steps 1 … T. A
delta-coded simulator, which sends only changes (± a row when a neuron starts or stops
spiking) and keeps each current, would need ``delta_synops`` row operations instead (the
same integers: every partial sum of ±1 rows is exact); at a fixed point it does nothing.
The clamped input's current is counted apart (``input_ops`` = non-zero pixels × width of
the first layer, float additions of ±pixel values, once per inference).

Reference: Laydevant, Ernoult, Querlioz, Grollier, CVPR Workshops 2021 (the network);
the spiking reading is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from binlearn.binary.kernels.sparse import sparse_binary_product
from binlearn.energy.couplings import Dense
from binlearn.energy.network import EnergyNet
from binlearn.energy.neurons import BinaryAccumulator
from binlearn.energy.relax import EVEN_ODD, SYNCHRONOUS, RelaxationContext, check_schedule, prepare, relax
from binlearn.energy.state import EnergyState
from binlearn.errors import BinlearnError

__all__ = ["READOUTS", "SpikingEPError", "EPSpikeRecord", "check_spiking", "fan_outs", "event_currents",
           "read_indices", "simulate_ep"]

READOUTS = ("relaxation", "spike_count")


class SpikingEPError(BinlearnError, ValueError):
    """The network cannot be read as an event-driven spiking network (the message says why)."""


def check_spiking(net: EnergyNet) -> None:
    """Refuse, in one line, a network whose relaxation is not a spiking network of ±1 rows.

    Needs: every layer of :class:`BinaryAccumulator` neurons (spikes in {0, 1}), every
    coupling :class:`Dense` with binary weights and one α (rows of ±1), and the output in the
    dynamics (a squared-error cost, not a cross-entropy readout).
    """
    for index, neuron in enumerate(net.neurons, start=1):
        if not isinstance(neuron, BinaryAccumulator):
            raise SpikingEPError(f"layer {index} has {type(neuron).__name__} neurons, whose float "
                                 "activations are not spikes; only binary-activation networks "
                                 "(model.neuron = \"binary\") run as spiking networks")
    for index, coupling in enumerate(net.couplings, start=1):
        if not isinstance(coupling, Dense):
            raise SpikingEPError(f"coupling {index} is a {type(coupling).__name__}; the spiking view needs "
                                 "fully connected couplings (max pooling routes currents through the maxima, "
                                 "not through the rows of the spiking neurons)")
        if coupling.scale is None or coupling.scale.numel() != 1:
            raise SpikingEPError(f"coupling {index} has float weights; the spiking view needs binary weights "
                                 "(model.weights = \"binary\") with one α per layer")
    if net.output_cost.readout:
        raise SpikingEPError("the network reads its output with a cross-entropy readout outside the "
                             "dynamics; the spiking view needs the output layer in the dynamics "
                             "(squared-error cost)")


def fan_outs(net: EnergyNet) -> tuple[int, ...]:
    """Per dynamical layer l: |layer l+1| + |layer l−1| (no input below layer 1, nothing above the output)."""
    sizes = [int(torch.Size(shape).numel()) for shape in net.layer_shapes]
    return tuple((sizes[i + 1] if i + 1 < len(sizes) else 0) + (sizes[i - 1] if i > 0 else 0)
                 for i in range(len(sizes)))


def _row_sum(spikes: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Σ over spiking j of rows[j]: the numba row adds, a GEMM where they do not apply (same integers)."""
    product = sparse_binary_product(spikes, rows)
    return product if product is not None else spikes @ rows


def event_currents(net: EnergyNet, context: RelaxationContext,
                   spikes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """I_l for every dynamical layer from the spikes ``spikes[l]`` ∈ {0, 1}, ``(batch, |layer l|)``.

    The currents the relaxation computes, in the same float32 operations and order
    (fl(fl(α·n) + base), n an exact integer sum of ±1 rows), from row adds over the spiking
    neurons: ``neuron.step_(v, I_l)`` is then the relaxation's next membrane bit for bit.

    Args:
        net: a network :func:`check_spiking` accepts.
        context: :func:`~binlearn.energy.relax.prepare`'s context (weights, α, the input's current).
        spikes: one tensor per dynamical layer.
    """
    count = net.num_layers
    weights, biases, alphas = context.weights, context.biases, context.alphas
    currents = []
    for index in range(count):
        if index == 0:
            current = context.input_drive.clone()  # the clamped image's constant current
        else:  # rows of W_l for the spiking neurons below: W_lᵀ laid out row-major
            rows = weights[index].detach().t().contiguous()
            current = _row_sum(spikes[index - 1], rows).mul_(alphas[index]).add_(biases[index])
        if index + 1 < count:  # rows of W_{l+1} for the spiking neurons above
            down = _row_sum(spikes[index + 1], weights[index + 1].detach().contiguous())
            current = down.mul_(alphas[index + 1]).add_(current)
        currents.append(current)
    return tuple(currents)


class EPSpikeRecord(NamedTuple):
    """What a spiking run of T steps did, per batch.

    Args:
        predictions: ``{readout: (T, batch) int64}``, the class predicted after each step.
        spikes: ``(T + 1, layers)`` int64, spikes per layer summed over the batch; row 0 is
            the initial state's (read by step 1 under the synchronous schedule).
        changes: ``(T, layers)`` int64, neurons that started or stopped spiking at each step.
        synops: ``(T, layers)`` int64, row-add synaptic operations at each step caused by each
            layer's spikes, summed over the batch (see the module docstring).
        delta_synops: ``(T, layers)`` int64, the same for a delta-coded simulator.
        input_ops: non-zero inputs × width of the first layer, summed over the batch.
        mismatches: steps at which a membrane differed from the row-add update (``check=True``
            only; 0 means every step reproduced bit for bit).
        state: the state after T steps (what :func:`~binlearn.energy.relax.relax` returns).
    """

    predictions: dict[str, torch.Tensor]
    spikes: torch.Tensor
    changes: torch.Tensor
    synops: torch.Tensor
    delta_synops: torch.Tensor
    input_ops: int
    mismatches: int
    state: EnergyState


def read_indices(schedule: str, count: int, steps: int) -> list[list[int]]:
    """Per layer, the step whose spikes neighbours read at steps 1 … T (0: the initial state's).

    Synchronous: step t reads every layer's spikes of step t − 1. Even/odd: the first
    half-sweep's layers (0, 2, …) are read by the second half-sweep of the same step t.
    """
    first = set(range(0, count, 2)) if schedule == EVEN_ODD else set()
    return [[t if index in first else t - 1 for t in range(1, steps + 1)] for index in range(count)]


@torch.no_grad()
def simulate_ep(net: EnergyNet, x: torch.Tensor, steps: int, schedule: str = SYNCHRONOUS,
             check: bool = False) -> EPSpikeRecord:
    """Run ``steps`` time steps (relaxation steps) from the network's initial state.

    Args:
        net: a network :func:`check_spiking` accepts (CPU or CUDA; row adds on CPU).
        x: clamped input, ``(batch, *net.input_shape)``, any float values (pixels).
        steps: T ≥ 1.
        schedule: the relaxation's schedule, ``"synchronous"`` or ``"even_odd"``.
        check: also recompute every layer's current from the previous step's spikes with
            :func:`event_currents` and count the steps whose membranes differ from the
            relaxation's (costs about one more relaxation).
    """
    check_spiking(net)
    check_schedule(schedule)
    if steps < 1:
        raise SpikingEPError(f"time steps must be >= 1, got {steps}")
    count, batch = net.num_layers, x.shape[0]
    context = prepare(net, x)
    initial = net.initial_state(batch, device=x.device, dtype=x.dtype)
    cost = net.output_cost
    spikes = torch.zeros(steps + 1, count, dtype=torch.int64)
    changes = torch.zeros(steps, count, dtype=torch.int64)
    predictions = {name: torch.empty(steps, batch, dtype=torch.int64) for name in READOUTS}
    previous_spikes = [n.activation(s) for n, s in zip(net.neurons, initial.layers, strict=True)]
    previous_state = [s.clone() for s in initial.layers] if check else []
    spikes[0] = torch.tensor([int(a.sum()) for a in previous_spikes])
    output_counts = torch.zeros_like(previous_spikes[-1])
    mismatches = 0
    first = set(range(0, count, 2))

    def record(step: int, layers: tuple[torch.Tensor, ...]) -> None:
        nonlocal previous_spikes, previous_state, mismatches, output_counts
        current = [n.activation(s) for n, s in zip(net.neurons, layers, strict=True)]
        if check:
            if schedule == EVEN_ODD:  # the second half-sweep read the first one's new spikes
                read = [current[i] if i in first else previous_spikes[i] for i in range(count)]
                late = event_currents(net, context, read)
                early = event_currents(net, context, previous_spikes)
                drives = [early[i] if i in first else late[i] for i in range(count)]
            else:
                drives = list(event_currents(net, context, previous_spikes))
            rebuilt = [n.step_(v.clone(), drive)
                       for n, v, drive in zip(net.neurons, previous_state, drives, strict=True)]
            if not all(torch.equal(a, b) for a, b in zip(rebuilt, layers, strict=True)):
                mismatches += 1
            previous_state = [s.clone() for s in layers]
        spikes[step] = torch.tensor([int(a.sum()) for a in current])
        changes[step - 1] = torch.tensor([int((a != b).sum())
                                          for a, b in zip(current, previous_spikes, strict=True)])
        output = layers[-1]
        predictions["relaxation"][step - 1] = cost.predict(output, current[-1]).cpu()
        output_counts = output_counts + current[-1]
        predictions["spike_count"][step - 1] = cost.predict(output, output_counts).cpu()
        previous_spikes = current

    state = relax(net, x, initial, steps, schedule=schedule, context=context, record=record)
    fans = torch.tensor(fan_outs(net), dtype=torch.int64)
    synops = torch.zeros(steps, count, dtype=torch.int64)
    delta = torch.zeros(steps, count, dtype=torch.int64)
    for index, reads in enumerate(read_indices(schedule, count, steps)):
        synops[:, index] = spikes[reads, index] * fans[index]
        # a delta-coded simulator sends a layer's first read spikes whole, then what changed
        # between consecutive reads (changes[t - 1]: between steps t - 1 and t)
        delta[0, index] = spikes[reads[0], index] * fans[index]
        delta[1:, index] = changes[[t - 1 for t in reads[1:]], index] * fans[index]
    width = int(torch.Size(net.layer_shapes[0]).numel())
    input_ops = int(torch.count_nonzero(x)) * width
    return EPSpikeRecord(predictions, spikes, changes, synops, delta, input_ops, mismatches, state)
