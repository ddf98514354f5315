"""An integer-only Equilibrium Propagation training step for fully connected binary networks.

With ±1 weights, binary accumulator neurons (:class:`~binlearn.energy.BinaryAccumulator`) and
{0, 1} inputs, every tensor of a training step is an integer or a boolean: states, drives,
thresholds, the weight update, the synapse state and the biases. Every real number of the
float engine becomes an integer in one fixed-point unit 2^−F (F = ``fraction_bits``) once,
outside the step:

    S = round(s · 2^F)    state of a unit, S ∈ [0, 2^F]          (s ∈ [0, 1])
    A_l = round(α_l · 2^F) > 0                                    (coupling l's scaling factor)
    Bias_l = round(b_l · 2^F)                                     (int32, learned as an integer)
    Θ = round(θ · 2^F),  S_init = round(s_init · 2^F),  B_β = round(|β| · 2^F)
    γ = 2^−g                                                      (the accumulator's rate)

Layers l = 0 … L−1 (L couplings; coupling 0 reads the input x, coupling l ≥ 1 joins layer
l−1 below to layer l above), signs S_l ∈ {−1, +1}^(N_l × N_{l−1}) as int8, a_l = [S_l > Θ]
∈ {0, 1} (uint8; Heaviside(0) = 0). One synchronous relaxation step, every layer from the
previous state:

    z_l = a_{l−1} S_lᵀ,   d_l = a_l S_l            (int32 popcount sums, exact; a_{−1} = x)
    U_l = A_l · z_l + Bias_l + A_{l+1} · d_{l+1}    (no second term at l = L−1)      (int32)
    S_l ← clamp(S_l + ((U_l − S_l) >> g), 0, 2^F)                                   (int32)

``>>`` is the arithmetic shift (floor division by 2^g); with g = 1 (γ = 1/2) the update is
(S_l + U_l) >> 1. The input drive I = A_0 · z_0 + Bias_0 is computed once per batch. The
output layer (L−1, N = classes × group) is nudged towards Tg = 2^F · onehot(y) (each class's
group set to 2^F), with the signed β of the batch, σ = sign(β), in one of three placements
(``rule.nudge_placement``):

    drive:       U_out += (σ B_β (Tg − S_out)) >> F                    (every step)
    free_drive:  U_out += P,  P = (σ B_β (Tg − S⁰_out)) >> F           (S⁰: the free phase's end)
    state:       S_out ← clamp(S_out' + ((σ B_β (Tg − S_out)) >> F), 0, 2^F)
                 (S_out' the neuron's step, S_out the state before it)

the nudge product formed in int64 (B_β · 2^F may pass 2^31). EP, with s⁰ after T free steps
from S_init, s¹ after K nudged steps from s⁰ and s² = s⁰ (one-sided) or the −β phase
(symmetric, σ = +1):

    D_l = Σ_batch a¹_lᵀ a¹_{l−1} − a²_lᵀ a²_{l−1}      D^b_l = Σ_batch a¹_l − a²_l      (int32)
    u_l = −σ D_l,   u^b_l = −σ D^b_l

u_l is EP's gradient estimate g_l times n|β|B (n = 1 one-sided, 2 symmetric; B the batch),
exactly (:mod:`binlearn.rules.integer_synapse`), and goes to the integer synapse rule, clipped
to ±2^bits (counter: c ← sat_b(c − sign(c)(|c| >> k) + u); w ← −w, c ← 0 where c·w ≥ θ_l;
hidden_int: h ← sat_b(h − u), w = sign(h)). The biases take the SGD step b ← b − lr_l g^b_l
as integers, rounded stochastically with integer arithmetic only:

    R_l = round(lr_l · 2^(F + Q) / (n |β| B))                 (a host integer, once per step)
    Bias_l ← clamp(Bias_l − ((R_l u^b_l + r) >> Q), −(2^24 − 1), 2^24 − 1),   r uniform in [0, 2^Q)

Q = 32, so E[ΔBias] = lr_l g^b_l 2^F up to the rounding of R_l (relative 2^−Q / rate), r the
top Q bits of the counter-based splitmix64 word of
:func:`~binlearn.binary.kernels.bernoulli.stochastic_shift`, seeded by
mix(step seed, 1001 + l), the step seed mix(seed, step) (a step of a resumed run draws what
it drew in the uninterrupted run).

Float pixel inputs. With x ∈ [0, 1] not binary, the first coupling's two products are not
integers: the input drive is I = round(A_0 · (x S_0ᵀ)) + Bias_0 (the product in float64,
rounded to the nearest integer once per batch; from there the relaxation is integer), and
u_0 = −σ (a¹_0 − a²_0)ᵀ x (float64) is rounded stochastically,
⌊u⌋ + [r < u − ⌊u⌋], by :func:`~binlearn.binary.kernels.bernoulli.stochastic_round` with the
seed mix(step seed, 1). Only these two products are float; every other tensor of the step is
integer.

What is rounded, against the float engine (:mod:`binlearn.energy.relax`, float32): A_l, Bias_l,
Θ, S_init, B_β (each to 2^−F: α = 0.0179 of 784-8192 becomes A = 1170 at F = 16, 0.03 %
off), and the accumulator's γ-step, floored to 2^−F each step instead of rounded to float32's
24 bits. Θ = 0.5, S_init = 1, γ = 1/2 and β = 2 are exact. The float engine's drive
fl(fl(α z) + b) and the integer one differ by less than 2 · 2^−F, so a unit's activation differs
only where its accumulator is within a few 2^−F of θ. Measured agreement of the free-phase
predictions with the float engine on the same weights (``benchmarks/integer_agreement.py``,
1000 MNIST test images binarised at 0.5, T = 20): a 784-1024-100 net trained by this step,
F = 16: 1000 of 1000 predictions and 99.9998 % of the hidden activations agree (F = 12: 99.1 %
of the predictions, F = 8: 89.4 %). ``docs/results.md`` ("Integer-only EP step") has the
table, the speed against the float Bop step and a training comparison.

Speed: signs are int8, kept with their transposes (``IntegerNetwork.transposed``; a step flips
both) so that no step transposes a sign matrix; products are int16 below 2^15 terms, updated
from the units that changed (:mod:`binlearn.binary.kernels.integer_rows`); each layer's drive,
accumulator step and activation is one fused pass; the synapse rule is one branch-free pass.

Reference: Laydevant et al., CVPRW 2021 (binary EP, the accumulator neuron); Scellier & Bengio
2017 (EP); Helwegen et al. 2019 (Bop, whose counter :class:`~binlearn.rules.IntegerCounter` is).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from binlearn.binary.kernels.bernoulli import mix_seed, stochastic_round, stochastic_shift
from binlearn.binary.kernels.integer_rows import accumulate, add_row_changes, outer_difference
from binlearn.rules.integer_synapse import counter_update, hidden_update, mirror_flips

__all__ = ["IntegerEPParameters", "IntegerNetwork", "IntegerSynapseRule", "IntegerStepResult",
           "RATE_SHIFT", "BIAS_LIMIT", "PLACEMENTS", "fixed", "integer_network", "input_drive",
           "integer_relax", "integer_free_phase", "integer_scores", "integer_predict",
           "integer_ep_step", "bias_rate", "check_range", "with_transposed", "gamma_shift",
           "integer_parameters",
           "network_integers"]

RATE_SHIFT = 32
"""Q: the bias rates R_l are fixed point with Q fractional bits below 2^−F."""
BIAS_LIMIT = (1 << 24) - 1
"""|Bias_l| saturates here (|b| < 2^(24 − F): 256 at F = 16): below 2^24 the float32 copy
b_l = Bias_l · 2^−F that a checkpoint and the float engine read is exact, so the integer is
recovered from it bit for bit."""
PLACEMENTS = ("drive", "state", "free_drive")


class IntegerEPParameters(NamedTuple):
    """The step's integer constants (module docstring).

    fraction_bits: F; gamma_shift: g (γ = 2^−g); threshold: Θ; initial: S_init; beta: B_β > 0
    (the magnitude; the sign is the step's); free_steps: T; nudged_steps: K; placement: one of
    :data:`PLACEMENTS`; symmetric: ±β phases; num_classes, group_size: the output groups.
    """

    fraction_bits: int
    gamma_shift: int
    threshold: int
    initial: int
    beta: int
    free_steps: int
    nudged_steps: int
    placement: str
    symmetric: bool
    num_classes: int
    group_size: int


class IntegerNetwork(NamedTuple):
    """signs: int8 (N_l, N_{l−1}) per coupling, ±1; scales: A_l (Python ints > 0); biases:
    int32 (N_l,); transposed: () or S_lᵀ (int8, contiguous) per coupling, kept with the signs
    (a step flips both) so that no step transposes a sign matrix (:func:`with_transposed`)."""

    signs: tuple[torch.Tensor, ...]
    scales: tuple[int, ...]
    biases: tuple[torch.Tensor, ...]
    transposed: tuple[torch.Tensor, ...] = ()


def with_transposed(network: IntegerNetwork) -> IntegerNetwork:
    """``network`` with S_lᵀ of every coupling (computed once; each step keeps them)."""
    return network._replace(transposed=tuple(s.t().contiguous() for s in network.signs))


def _transposed(network: IntegerNetwork, index: int) -> torch.Tensor:
    return network.transposed[index] if network.transposed else network.signs[index].t().contiguous()


class IntegerSynapseRule(NamedTuple):
    """name: "counter" | "hidden_int"; bits: b; leak_shift: k (counter); thresholds: θ_l per
    coupling (counter); bias_rates: R_l per coupling (:func:`bias_rate`)."""

    name: str
    bits: int
    leak_shift: int
    thresholds: tuple[int, ...]
    bias_rates: tuple[int, ...]


class IntegerStepResult(NamedTuple):
    """network: the new signs and biases; synapses: the new synapse states; flips: per coupling
    (int64); free, nudged: the states S⁰, S¹ (int32, one per layer); weight_updates: u_l
    (int32); bias_updates: the Bias_l decrements (int64); scores: the free phase's class scores
    (int64, :func:`integer_scores`)."""

    network: IntegerNetwork
    synapses: tuple[torch.Tensor, ...]
    flips: tuple[torch.Tensor, ...]
    free: tuple[torch.Tensor, ...]
    nudged: tuple[torch.Tensor, ...]
    weight_updates: tuple[torch.Tensor, ...]
    bias_updates: tuple[torch.Tensor, ...]
    scores: torch.Tensor


def fixed(value: float, fraction_bits: int) -> int:
    """round(value · 2^F), a Python integer (round half to even)."""
    return int(round(float(value) * (1 << fraction_bits)))


def integer_network(signs, scales, biases, fraction_bits: int) -> IntegerNetwork:
    """The integers of a float net's couplings: ``signs`` ±1 tensors (any dtype), ``scales`` α_l
    (floats), ``biases`` b_l (float tensors): int8 signs, A_l = round(α_l 2^F), int32
    round(b_l 2^F) (exact when b_l is a multiple of 2^−F, as the integer step keeps it)."""
    unit = float(1 << fraction_bits)
    return IntegerNetwork(
        tuple(s.detach().to(torch.int8).contiguous() for s in signs),
        tuple(fixed(a, fraction_bits) for a in scales),
        tuple(torch.round(b.detach().double() * unit).to(torch.int32) for b in biases))


def bias_rate(learning_rate: float, fraction_bits: int, beta: float, batch: int, symmetric: bool) -> int:
    """R = round(lr · 2^(F + Q) / (n |β| B)) (module docstring)."""
    nudges = 2.0 if symmetric else 1.0
    return int(round(learning_rate * 2.0 ** (fraction_bits + RATE_SHIFT) / (nudges * abs(beta) * batch)))


def check_range(params: IntegerEPParameters, network: IntegerNetwork) -> None:
    """ValueError unless every drive fits an int32: Σ_l A_l · fan + |Bias| + nudge < 2^31."""
    top = 1 << params.fraction_bits
    sizes = [s.shape for s in network.signs]
    for index in range(len(sizes)):
        largest = network.scales[index] * sizes[index][1] + BIAS_LIMIT + 2 * top
        if index + 1 < len(sizes):
            largest += network.scales[index + 1] * sizes[index + 1][0]
        if index + 1 == len(sizes):
            largest += params.beta * 2
        if largest >= 1 << 31:
            raise ValueError(f"fraction_bits = {params.fraction_bits} is too many for layer {index + 1}: "
                             f"its drive could reach {largest} >= 2^31 (lower rule.fraction_bits)")


def _product_dtype(terms: int) -> torch.dtype:
    """int16 holds a sum of fewer than 2^15 terms ±1 (half the memory traffic of int32)."""
    return torch.int16 if terms < 1 << 15 else torch.int32


class _RowProduct:
    """a Mᵀ for a {0, 1} activation a, kept between calls and updated from the units that
    changed (:func:`~binlearn.binary.kernels.integer_rows.add_row_changes`), in int16 below 2^15
    rows. A first call whose rows are all equal (a relaxation starts from one state for every
    sample) computes one row and copies it."""

    def __init__(self, rows: torch.Tensor, batch: int) -> None:
        self.rows = rows.numpy()
        self.old = torch.zeros((batch, rows.shape[0]), dtype=torch.uint8)
        self.product = torch.zeros((batch, rows.shape[1]), dtype=_product_dtype(rows.shape[0]))
        self.events = 0
        self.fresh = True

    def __call__(self, new: torch.Tensor) -> torch.Tensor:
        if self.fresh and new.shape[0] > 1 and torch.equal(new, new[:1].expand_as(new)):
            self.events += add_row_changes(new[:1].numpy(), self.old[:1].numpy(), self.rows,
                                           self.product[:1].numpy())
            self.old.copy_(self.old[:1].expand_as(self.old))
            self.product.copy_(self.product[:1].expand_as(self.product))
        else:
            self.events += add_row_changes(new.numpy(), self.old.numpy(), self.rows, self.product.numpy())
        self.fresh = False
        return self.product


class _Tables:
    """The batch's products: the up product of couplings 1 … L−1 (rows Sᵀ) and the down product
    (rows S), each an event tracker, for every phase of the batch."""

    def __init__(self, network: IntegerNetwork, batch: int) -> None:
        self.up: list[_RowProduct | None] = [None]
        self.down: list[_RowProduct | None] = [None]
        for index, signs in enumerate(network.signs[1:], start=1):
            self.up.append(_RowProduct(_transposed(network, index), batch))
            self.down.append(_RowProduct(signs, batch))


def _binary(x: torch.Tensor) -> bool:
    return bool(torch.logical_or(x == 0, x == 1).all())


def input_drive(params: IntegerEPParameters, network: IntegerNetwork, x: torch.Tensor) -> torch.Tensor:
    """I = A_0 · (x S_0ᵀ) + Bias_0 (int32, (batch, N_0)): x uint8 {0, 1} (exact), or float
    (x S_0ᵀ in float64, A_0 times it rounded to the nearest integer)."""
    x = x.flatten(1)
    signs, scale, bias = network.signs[0], network.scales[0], network.biases[0]
    if x.dtype == torch.uint8:
        product = _RowProduct(_transposed(network, 0), x.shape[0])(x.contiguous())
        return product.to(torch.int32).mul_(scale).add_(bias)
    exact = torch.mm(x.double(), signs.t().double()).mul_(scale).round_()
    return exact.to(torch.int32).add_(bias)


def _target(params: IntegerEPParameters, labels: torch.Tensor) -> torch.Tensor:
    """Tg: (batch, classes · group) int32, 2^F on the label's group, 0 elsewhere."""
    one_hot = torch.nn.functional.one_hot(labels, params.num_classes)
    return one_hot.repeat_interleave(params.group_size, dim=1).mul_(1 << params.fraction_bits).to(torch.int32)


def _nudge(params: IntegerEPParameters, beta: int, target: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """(β_signed (Tg − S)) >> F, in int64, returned as int32."""
    product = (target - state).to(torch.int64).mul_(beta)
    return product.bitwise_right_shift_(params.fraction_bits).to(torch.int32)


def integer_relax(params: IntegerEPParameters, network: IntegerNetwork, drive: torch.Tensor,
                  state: tuple[torch.Tensor, ...], steps: int, tables: _Tables,
                  target: torch.Tensor | None = None, beta: int = 0) -> tuple[torch.Tensor, ...]:
    """``steps`` synchronous integer steps from ``state`` (int32 per layer; a new tuple is
    returned), the output nudged with the signed ``beta`` (σ B_β; 0: free) towards ``target``
    in ``params.placement`` (module docstring). ``drive``: the input drive I. Each layer's
    drive and accumulator step is one fused pass
    (:func:`~binlearn.binary.kernels.integer_rows.accumulate`)."""
    layers = [s.clone() for s in state]
    count, top, shift = len(layers), 1 << params.fraction_bits, params.gamma_shift
    goal = target if target is not None and beta != 0 else None
    push = None
    if goal is not None and params.placement == "free_drive":  # from the phase's starting output
        push = _nudge(params, beta, goal, layers[-1])
    activations = [torch.gt(s, params.threshold).to(torch.uint8) for s in layers]
    absent = torch.zeros((0, 0), dtype=torch.int32).numpy()
    no_bias = torch.zeros(drive.shape[1], dtype=torch.int32).numpy()
    for _ in range(steps):
        ups, downs = [], []
        for index in range(count):
            up = tables.up[index]
            ups.append(drive if up is None else up(activations[index - 1]))
        for index in range(count - 1):
            down = tables.down[index + 1]
            assert down is not None
            downs.append(down(activations[index + 1]))
        before = layers[-1]
        extra = push
        if goal is not None and params.placement == "drive":
            extra = _nudge(params, beta, goal, before)
        new = [torch.empty_like(s) for s in layers]
        acts = [torch.empty_like(a) for a in activations]
        for index in range(count):
            last = index + 1 == count
            accumulate(ups[index].numpy(), 1 if index == 0 else network.scales[index],
                       no_bias if index == 0 else network.biases[index].numpy(),
                       absent if last else downs[index].numpy(), 0 if last else network.scales[index + 1],
                       extra.numpy() if last and extra is not None else absent,
                       layers[index].numpy(), shift, top, params.threshold, new[index].numpy(),
                       acts[index].numpy())
        if goal is not None and params.placement == "state":
            new[-1] = new[-1].add_(_nudge(params, beta, goal, before)).clamp_(0, top)
            acts[-1] = torch.gt(new[-1], params.threshold).to(torch.uint8)
        layers, activations = new, acts
    return tuple(layers)


def _initial(params: IntegerEPParameters, network: IntegerNetwork, batch: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.full((batch, s.shape[0]), params.initial, dtype=torch.int32) for s in network.signs)


def _prepare_input(x: torch.Tensor) -> torch.Tensor:
    """x as uint8 when every value is 0 or 1 (the integer route), else as given (float)."""
    flat = x.flatten(1)
    if flat.dtype == torch.uint8 or flat.dtype == torch.bool:
        return flat.to(torch.uint8)
    return flat.to(torch.uint8) if _binary(flat) else flat


def integer_free_phase(params: IntegerEPParameters, network: IntegerNetwork, x: torch.Tensor,
                       steps: int | None = None) -> tuple[torch.Tensor, ...]:
    """S⁰ after ``steps`` (default T) free steps from S_init: int32, one per layer."""
    x = _prepare_input(x)
    tables = _Tables(network, x.shape[0])
    initial = _initial(params, network, x.shape[0])
    return integer_relax(params, network, input_drive(params, network, x), initial,
                         params.free_steps if steps is None else steps, tables)


def integer_scores(params: IntegerEPParameters, output: torch.Tensor) -> torch.Tensor:
    """Per class, Σ_group a · (G 2^F + 1) + Σ_group S (int64): the group's activity first,
    ties broken by its accumulators (the float cost's mean(a) + 10^−3 mean(s) ranks the same
    way for groups of G < 1000)."""
    grouped = output.to(torch.int64).view(output.shape[0], params.num_classes, params.group_size)
    active = torch.gt(grouped, params.threshold).sum(dim=2)
    weight = params.group_size * (1 << params.fraction_bits) + 1
    return active.mul_(weight).add_(grouped.sum(dim=2))


def integer_predict(params: IntegerEPParameters, network: IntegerNetwork, x: torch.Tensor,
                    steps: int | None = None) -> torch.Tensor:
    """argmax of :func:`integer_scores` after the free phase (first on ties), (batch,) int64."""
    return integer_scores(params, integer_free_phase(params, network, x, steps)[-1]).argmax(dim=1)


def _weight_update(first_top, first_bottom, second_top, second_bottom, factor: int,
                   limit: int) -> torch.Tensor:
    """factor · D (int16 below 2^15 samples, else int32), clipped to ±limit where it could pass it."""
    batch = first_top.shape[0]
    dtype = torch.int16 if batch < 1 << 15 else torch.int32
    out = torch.zeros((first_top.shape[1], first_bottom.shape[1]), dtype=dtype)
    outer_difference(first_top.contiguous().numpy(), first_bottom.contiguous().numpy(),
                     second_top.contiguous().numpy(), second_bottom.contiguous().numpy(), out.numpy(), factor)
    return out.clamp_(-limit, limit) if batch > limit else out  # |D| ≤ batch


def integer_ep_step(params: IntegerEPParameters, rule: IntegerSynapseRule, network: IntegerNetwork,
                    synapses: tuple[torch.Tensor, ...], x: torch.Tensor, labels: torch.Tensor,
                    sign: int, seed: int, inplace: bool = False) -> IntegerStepResult:
    """One EP training step in integers (module docstring): free phase, nudged phase(s), u_l and
    u^b_l, the synapse rule, the biases. Pure: the inputs are not changed.

    Args:
        params: the step's constants.
        rule: the synapse rule and the bias rates.
        network: the signs, scales and biases.
        synapses: per coupling, the counter c (counter) or the hidden integer h (hidden_int),
            int8/int16, the shape of the signs.
        x: (batch, …) inputs: {0, 1} (uint8, bool, or a float tensor of 0s and 1s: the integer
            route) or float pixels (the first products in float64, module docstring).
        labels: (batch,) int64.
        sign: σ = ±1, the sign of β for this batch (+1 with symmetric nudging).
        seed: the step's seed in [0, 2^64) (mix(seed, step)).
        inplace: update the signs, their transposes and the synapse states in place (the
            learner, which owns them: three fewer copies of every sign matrix per step); the
            default leaves every input as it was.
    """
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign}")
    x = _prepare_input(x)
    batch = x.shape[0]
    tables = _Tables(network, batch)
    drive = input_drive(params, network, x)
    target = _target(params, labels)
    free = integer_relax(params, network, drive, _initial(params, network, batch), params.free_steps, tables)
    beta = sign * params.beta
    first = integer_relax(params, network, drive, free, params.nudged_steps, tables, target, beta)
    second = (integer_relax(params, network, drive, free, params.nudged_steps, tables, target, -beta)
              if params.symmetric else free)
    first_acts = [torch.gt(s, params.threshold).to(torch.uint8) for s in first]
    second_acts = [torch.gt(s, params.threshold).to(torch.uint8) for s in second]
    signs, biases, states, flips, updates, decrements, transposed = [], [], [], [], [], [], []
    top = 1 << rule.bits
    step_seed = np.uint64(seed)
    layers = zip(network.signs, network.biases, synapses, strict=True)
    for index, (weight, bias, synapse) in enumerate(layers):
        if index == 0 and x.dtype != torch.uint8:  # float pixels: the float product, rounded stochastically
            difference = torch.mm((first_acts[0].double() - second_acts[0].double()).t(), x.double())
            rounded = stochastic_round(difference.mul_(-sign).clamp_(-top, top).numpy(),
                                       int(mix_seed(step_seed, np.uint64(1))))
            update = torch.from_numpy(rounded).to(torch.int32)
        else:
            below_first = x if index == 0 else first_acts[index - 1]
            below_second = x if index == 0 else second_acts[index - 1]
            update = _weight_update(first_acts[index], below_first, second_acts[index], below_second,
                                    -sign, top)
        old_signs = weight.clone() if network.transposed else weight
        new_signs, new_state = (weight, synapse) if inplace else (weight.clone(), synapse.clone())
        if rule.name == "counter":
            flipped = counter_update(new_signs, new_state, update, rule.bits, rule.leak_shift,
                                     rule.thresholds[index])
        else:
            flipped = hidden_update(new_signs, new_state, update, rule.bits)
        if network.transposed:  # the flips carried into the kept Sᵀ
            mirror = network.transposed[index] if inplace else network.transposed[index].clone()
            if int(flipped):
                mirror_flips(old_signs, new_signs, mirror)
            transposed.append(mirror)
        bias_update = torch.sub(first_acts[index].to(torch.int64).sum(dim=0),
                                second_acts[index].to(torch.int64).sum(dim=0)).mul_(-sign)
        scaled = bias_update.mul_(rule.bias_rates[index]).numpy()
        decrement = torch.from_numpy(stochastic_shift(scaled, RATE_SHIFT,
                                                      int(mix_seed(step_seed, np.uint64(1001 + index)))))
        new_bias = bias.to(torch.int64).sub(decrement).clamp_(-BIAS_LIMIT, BIAS_LIMIT).to(torch.int32)
        signs.append(new_signs)
        states.append(new_state)
        flips.append(flipped)
        updates.append(update)
        biases.append(new_bias)
        decrements.append(decrement)
    return IntegerStepResult(IntegerNetwork(tuple(signs), network.scales, tuple(biases), tuple(transposed)),
                             tuple(states),
                             tuple(flips), free, first, tuple(updates), tuple(decrements),
                             integer_scores(params, free[-1]))


def gamma_shift(gamma: float) -> int | None:
    """g with γ = 2^−g exactly, or None when γ is no such power of two."""
    exponent = -math.log2(gamma)
    return int(exponent) if exponent == int(exponent) and 0 <= exponent <= 30 else None


def integer_parameters(net, ep, fraction_bits: int) -> IntegerEPParameters:
    """The integer constants of an :class:`~binlearn.energy.EnergyNet` trained by
    :class:`~binlearn.rules.EP` (ValueError, one line, for what has no integer step: float
    weights or neurons, convolutions, a cross-entropy readout, γ no power of two, even/odd
    relaxation, a convergence test)."""
    from binlearn.energy import BinaryAccumulator, Dense
    from binlearn.energy.costs import SquaredError

    if not 4 <= fraction_bits <= 24:
        raise ValueError(f"fraction_bits must be in [4, 24], got {fraction_bits}")
    if not all(isinstance(c, Dense) for c in net.couplings):
        raise ValueError("the integer step needs a fully connected net (model.architecture = \"fc\")")
    if not all(c.binary_weights for c in net.couplings):
        raise ValueError("the integer step needs binary weights (model.weights = \"binary\")")
    if any(c.learns_scale for c in net.couplings):
        raise ValueError("the integer step keeps α fixed (model.learn_scale = false)")
    neurons = net.neurons
    if not all(isinstance(n, BinaryAccumulator) for n in neurons):
        raise ValueError("the integer step needs binary accumulator neurons (model.neuron = \"binary\")")
    if len({(n.gamma, n.threshold, n.initial_value) for n in neurons}) != 1:
        raise ValueError("the integer step needs one neuron setting for every layer")
    neuron = neurons[0]
    shift = gamma_shift(neuron.gamma)
    if shift is None:
        raise ValueError(f"the integer step needs model.neuron_gamma = 2^-g (1, 0.5, 0.25, ...), "
                         f"got {neuron.gamma}")
    if not isinstance(net.cost, SquaredError):
        raise ValueError("the integer step needs model.readout = \"mse\" (the output in the dynamics)")
    if ep.schedule != "synchronous":
        raise ValueError("the integer step relaxes synchronously (rule.relaxation = \"synchronous\")")
    if ep.free_tolerance is not None:
        raise ValueError("the integer step runs every free step (remove rule.free_tolerance)")
    if not 0.0 <= neuron.initial_value <= 1.0:
        raise ValueError(f"the integer step needs model.initial_state in [0, 1], got {neuron.initial_value}")
    if not -1.0 <= neuron.threshold <= 2.0:
        raise ValueError(f"the integer step needs model.neuron_threshold in [-1, 2], got {neuron.threshold}")
    if fixed(ep.beta, fraction_bits) < 1 or ep.beta > 64:
        raise ValueError(f"rule.beta = {ep.beta} has no fixed-point value in [2^-F, 64] "
                         f"for F = {fraction_bits}")
    return IntegerEPParameters(
        fraction_bits, shift, fixed(neuron.threshold, fraction_bits),
        fixed(neuron.initial_value, fraction_bits),
        fixed(ep.beta, fraction_bits), ep.free_steps, ep.nudged_steps, ep.nudge_placement.name,
        ep.symmetric, net.cost.num_classes, net.cost.group_size)


def network_integers(net, fraction_bits: int) -> IntegerNetwork:
    """:func:`integer_network` of an EnergyNet's couplings (signs, α, biases)."""
    return integer_network([c.weight for c in net.couplings], [float(c.scale) for c in net.couplings],
                           [c.bias for c in net.couplings], fraction_bits)
