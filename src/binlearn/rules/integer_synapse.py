"""Integer synapse state: two optimizers for binary (±1) weights that keep b-bit integers, not
Bop's float32 momentum.

Both turn the float gradient estimate g the learner holds into an integer update u per synapse:

    u = round(g · scale)         when every g · scale is within 1e-3 of an integer (exact)
    u = ⌊g · scale⌋ + [r < frac]  otherwise (stochastic rounding, E[u] = g · scale)

With binary activations (0/1 units) EP's estimate of a coupling is
g = −(1/(β B)) Σ_batch (ρ(s^β) ρ(s^β)ᵀ − ρ(s⁰) ρ(s⁰)ᵀ), (1/(2β B)) with symmetric nudging:
an integer matrix D times a constant, so with ``scale`` = |β| B (2|β| B) the update
u = g · scale = ∓D is exactly that integer matrix, in the descent direction of g (|β|: the
random sign of β is in D already). The energy learner sets ``scale`` before every step
(:meth:`IntegerSynapseOptimizer.set_update_scale`); 1/(β B) is folded into the threshold
(counter) or the bits (hidden_int). Where g·scale is not integral — float inputs into the
first coupling, float activations, a mean over several ranks — u is rounded stochastically:
r is uniform from the counter-based splitmix64 stream of
:func:`binlearn.binary.kernels.bernoulli.stochastic_round`, seeded by
mix(mix(seed, step), parameter index), so a run is reproducible and a resumed run identical.

``counter`` (:class:`IntegerCounter`): a signed b-bit counter c per synapse,

    c ← sat_b(c − sign(c)·(|c| >> k) + u);   w ← −w and c ← 0  where  c · w ≥ θ   (θ ≥ 1 an integer)

sat_b clips to [−2^(b−1), 2^(b−1) − 1]; c − sign(c)·(|c| >> k) is the integer form of Bop's
(1 − γ) with γ = 2^(−k), the leak rounded towards 0 on both signs: |c| < 2^k stops leaking.
The plain arithmetic shift, c − (c >> k), rounds towards −∞ instead: every negative c rises by
at least 1 per step (−1 >> k = −1) while a positive c below 2^k keeps its value, a drift towards
positive counters, so towards flipping +1 weights and holding −1 weights, that grows with k
(k ≥ b − 1: every negative counter climbs by exactly 1 per step). The symmetric form costs a
sign-magnitude shift (or a conditional add of 1 before the shift). c · w ≥ θ is Bop's test
m · w > τ (:mod:`binlearn.rules.bop`: flip where the filtered gradient agrees with the sign,
i.e. the update −c pushes against it), with |c| ≥ θ. After a flip c is reset to 0: the flip
consumed the evidence, and a counter kept at |c| ≥ θ would point against the new sign (Bop
keeps m, which after a flip disagrees with w, so it cannot flip back at once either; with
c ← 0 the new sign is judged on fresh evidence only, and nothing of the old is stored).

``hidden_int`` (:class:`HiddenInteger`): a hidden b-bit integer weight h per synapse,

    h ← sat_b(h − u);   w = sign(h)   (sign(0) = +1, the library's convention)

the integer form of SGD on a latent weight (w ← w − lr·g) with lr folded into the bits. h starts
at w · h₀, h₀ = ⌈2^(b−1) / 8⌉ (an eighth of the range: 16 for b = 8). No threshold: the
hysteresis is |h|, so h₀ is the evidence a first flip needs. Measured on the digits (64-32-100
binary EP, 2 epochs, b = 8): h₀ = 1 flipped 40 % of the synapses in the first epoch and stayed
at chance (0.125); h₀ = 16 reached 0.386.

The exact update is as large as the batch makes it (|u| ≤ B per synapse and step): with few
bits against a large batch one step can saturate the state. The knob is ``scale``: the energy
learner sets |β|·B / 2^s with s = ``optimizer.update_shift`` (default 0), so u = D / 2^s rounded
stochastically, ⌊D / 2^s⌋ + [r < frac]: in integer hardware an arithmetic shift of D and a
random carry from the counter-based stream.

Bits of learning state per synapse (:meth:`state_bits`): counter b + 1 (c and the sign),
hidden_int b (the sign is h's). Biases are not synapses: the learner trains them in float32 by
SGD (with ``rule.arithmetic = "integer"`` as integers, :mod:`binlearn.rules.integer_ep`). For
int8 signs (the integer EP step) the updates are single branch-free numba passes.
Every state tensor is an integer tensor of the smallest torch dtype that holds b bits
(int8 up to 8, int16 up to 16); ``state_dict`` keeps them, the step count and the flip counts
with their dtypes.

Reference: Helwegen et al., NeurIPS 2019 (Bop, whose counter this is); Laydevant et al.,
CVPRW 2021 (EP with binary weights and activations).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import torch

from binlearn.binary.kernels.bernoulli import mix_seed, stochastic_round
from binlearn.rules.bop import FlipCountingOptimizer

__all__ = ["IntegerSynapseOptimizer", "IntegerCounter", "HiddenInteger", "integer_update",
           "counter_update", "hidden_update", "hidden_initial", "state_dtype", "MIN_BITS", "MAX_BITS",
           "INTEGRAL_TOLERANCE"]

MIN_BITS, MAX_BITS = 2, 16
INTEGRAL_TOLERANCE = 1e-3
"""g · scale within this of an integer everywhere: the exact route (no random numbers)."""


def state_dtype(bits: int) -> torch.dtype:
    """The smallest torch integer dtype holding a signed ``bits``-bit value (2..16)."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"integer synapse bits must be in [{MIN_BITS}, {MAX_BITS}], got {bits}")
    return torch.int8 if bits <= 8 else torch.int16


def hidden_initial(bits: int) -> int:
    """h₀ = ⌈2^(b−1) / 8⌉: the magnitude a hidden integer weight starts at."""
    return -(-(1 << (bits - 1)) // 8)


def _range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def integer_update(gradient: torch.Tensor, scale: float, seed: int, bits: int) -> torch.Tensor:
    """u (int32, the shape of ``gradient``): round(g · scale) when every value is within
    :data:`INTEGRAL_TOLERANCE` of an integer, else stochastic rounding from ``seed``. Clipped to
    ±2^bits first (any larger update saturates a b-bit state anyway)."""
    limit = float(1 << bits)
    scaled = (gradient.detach().to(torch.float64) * scale).clamp_(-limit, limit)
    nearest = torch.round(scaled)
    if bool(((scaled - nearest).abs() <= INTEGRAL_TOLERANCE).all()):
        return nearest.to(torch.int32)
    rounded = stochastic_round(scaled.cpu().numpy(), seed)
    return torch.from_numpy(rounded).to(device=gradient.device, dtype=torch.int32)


@numba.njit(cache=True)
def _counter_kernel(weight, counter, update, low, high, shift, threshold):  # pragma: no cover
    # counter_update in one pass over int8 signs (the integer EP step's), serial and branch-free
    # (selects, so that it vectorises); the torch body of counter_update is its reference
    flips = 0
    for i in range(weight.size):
        c = np.int32(counter[i])
        negative = c < 0
        leak = (-c if negative else c) >> shift
        c = c - (-leak if negative else leak) + np.int32(update[i])
        c = min(max(c, low), high)
        w = np.int32(weight[i])
        flip = c * w >= threshold
        weight[i] = -w if flip else w
        counter[i] = 0 if flip else c
        flips += flip
    return flips


@numba.njit(cache=True)
def _hidden_kernel(weight, hidden, update, low, high):  # pragma: no cover
    flips = 0
    for i in range(weight.size):
        h = min(max(np.int32(hidden[i]) - np.int32(update[i]), low), high)
        hidden[i] = h
        w = 1 if h >= 0 else -1
        flips += w != weight[i]
        weight[i] = w
    return flips


@numba.njit(cache=True)
def _mirror_kernel(old, new, transposed, columns):  # pragma: no cover
    rows = old.size // columns
    for i in range(old.size):
        if old[i] != new[i]:
            transposed[(i % columns) * rows + i // columns] = new[i]


def _fused(weight: torch.Tensor, state: torch.Tensor, update: torch.Tensor) -> bool:
    """int8 signs, an integer state and an int16/int32 update, contiguous on the CPU: the numba pass."""
    return (weight.dtype == torch.int8 and update.dtype in (torch.int16, torch.int32)
            and weight.device.type == "cpu" and state.device.type == "cpu" and update.device.type == "cpu"
            and weight.is_contiguous()
            and state.is_contiguous() and update.is_contiguous()
            and state.dtype in (torch.int8, torch.int16) and update.shape == weight.shape == state.shape)


def mirror_flips(old: torch.Tensor, new: torch.Tensor, transposed: torch.Tensor) -> None:
    """transposed ← newᵀ where new ≠ old (int8 signs, 2-d, ``transposed`` contiguous = oldᵀ):
    the flips of a step carried into a kept transpose, in one scan."""
    if old.dim() != 2 or transposed.shape != old.t().shape or not transposed.is_contiguous():
        raise ValueError("transposed must be the contiguous transpose of a 2-d weight")
    _mirror_kernel(old.contiguous().view(-1).numpy(), new.contiguous().view(-1).numpy(),
                   transposed.view(-1).numpy(), old.shape[1])


def counter_update(weight: torch.Tensor, counter: torch.Tensor, update: torch.Tensor, bits: int,
                   leak_shift: int, threshold: int) -> torch.Tensor:
    """c ← sat_b(c − sign(c)·(|c| >> k) + u); w ← −w and c ← 0 where c · w ≥ θ. In place on
    ``weight`` (±1 floats, or int8) and ``counter`` (integer); returns the number of flips (int64
    tensor). int8 signs with an int16/int32 update (the integer EP step) take one fused numba
    pass."""
    low, high = _range(bits)
    if _fused(weight, counter, update):
        flips = _counter_kernel(weight.view(-1).numpy(), counter.view(-1).numpy(), update.view(-1).numpy(),
                                low, high, leak_shift, threshold)
        return torch.tensor(flips, dtype=torch.int64)
    value = counter.to(torch.int32)
    value = (value - value.sign() * (value.abs() >> leak_shift) + update).clamp_(low, high)
    sign = torch.where(weight >= 0, 1, -1).to(torch.int32)
    flip = value * sign >= threshold
    weight.mul_(flip.to(weight.dtype).mul_(-2).add_(1))  # integer scalars: int8 signs stay int8
    counter.copy_(value.masked_fill_(flip, 0))
    return flip.sum()


def hidden_update(weight: torch.Tensor, hidden: torch.Tensor, update: torch.Tensor,
                  bits: int) -> torch.Tensor:
    """h ← sat_b(h − u); w = sign(h) (sign(0) = +1). In place on ``weight`` and ``hidden``;
    returns the number of signs that changed (int64 tensor). int8 signs: one numba pass."""
    low, high = _range(bits)
    if _fused(weight, hidden, update):
        flips = _hidden_kernel(weight.view(-1).numpy(), hidden.view(-1).numpy(), update.view(-1).numpy(),
                               low, high)
        return torch.tensor(flips, dtype=torch.int64)
    value = (hidden.to(torch.int32) - update).clamp_(low, high)
    hidden.copy_(value)
    new = torch.where(value >= 0, 1, -1).to(weight.dtype)  # no float formed (integer signs stay integer)
    flips = (new != weight).sum()
    weight.copy_(new)
    return flips


class IntegerSynapseOptimizer(FlipCountingOptimizer):
    """The shared part: integer updates from the gradient, the step counter, flip counts, and
    a ``load_state_dict`` that keeps the integer dtypes.

    Args:
        params: ±1-valued tensors, or parameter groups (dicts).
        bits: b ∈ [2, 16], bits of the integer state per synapse.
        scale: updates per unit gradient (> 0); the energy learner sets |β|·B every step.
        seed: the stochastic rounding stream, an integer in [0, 2^63).
    """

    STATE = ""
    """The name of the per-synapse integer tensor in ``self.state[param]``."""

    def __init__(self, params, defaults: dict[str, Any], bits: int, scale: float, seed: int) -> None:
        state_dtype(bits)
        if not scale > 0:
            raise ValueError(f"integer synapse scale must be > 0, got {scale}")
        if not 0 <= seed < 2**63:
            raise ValueError(f"integer synapse seed must be in [0, 2^63), got {seed}")
        super().__init__(params, {"bits": int(bits), **defaults})
        for group in self.param_groups:
            state_dtype(group["bits"])
        self.scale, self.seed = float(scale), int(seed)

    def set_update_scale(self, scale: float) -> None:
        """Updates per unit gradient for the next steps (|β|·B for EP with 0/1 units)."""
        if not scale > 0:
            raise ValueError(f"integer synapse scale must be > 0, got {scale}")
        self.scale = float(scale)

    def _initial(self, param: torch.Tensor, bits: int) -> torch.Tensor:
        """The integer state of ``param`` before its first step."""
        raise NotImplementedError

    def _apply(self, param: torch.Tensor, state: torch.Tensor, update: torch.Tensor,
               group: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def state_bits(self, group: dict[str, Any]) -> int:
        """Bits of learning state per synapse of ``group``."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        """One integer update (and flips) for every parameter with a ``.grad``."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        index = 0
        for group in self.param_groups:
            for param in group["params"]:
                index += 1
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state[self.STATE] = self._initial(param.data, group["bits"])
                    state["flips"] = torch.zeros((), dtype=torch.int64, device=param.device)
                    state["step"] = torch.zeros((), dtype=torch.int64)
                state["step"] += 1
                step_seed = mix_seed(np.uint64(self.seed), np.uint64(int(state["step"])))
                seed = int(mix_seed(np.uint64(step_seed), np.uint64(index)))
                update = integer_update(param.grad, self.scale, seed, group["bits"])
                state["flips"] += self._apply(param.data, state[self.STATE], update, group)
        return loss


class IntegerCounter(IntegerSynapseOptimizer):
    """Bop with a leaky b-bit integer counter (see the module docstring):
    c ← sat_b(c − sign(c)·(|c| >> k) + u); w ← −w, c ← 0 where c · w ≥ θ.

    Args:
        params: ±1-valued tensors, or parameter groups with their own ``threshold``.
        bits: b ∈ [2, 16].
        leak_shift: k ∈ [1, 15] (γ = 2^(−k)).
        threshold: θ, an integer in [1, 2^(b−1)).
        scale, seed: see :class:`IntegerSynapseOptimizer`.
    """

    STATE = "counter"

    def __init__(self, params, bits: int = 8, leak_shift: int = 4, threshold: int = 8,
                 scale: float = 1.0, seed: int = 0) -> None:
        super().__init__(params, {"leak_shift": leak_shift, "threshold": threshold}, bits, scale, seed)
        for group in self.param_groups:
            bits, shift, theta = group["bits"], group["leak_shift"], group["threshold"]
            if not (isinstance(shift, int) and 1 <= shift <= 15):
                raise ValueError(f"counter leak_shift must be an integer in [1, 15], got {shift}")
            if not (float(theta).is_integer() and 1 <= theta < 1 << (bits - 1)):
                raise ValueError(f"counter threshold must be an integer in [1, {1 << (bits - 1)}) "
                                 f"for {bits} bits, got {theta}")
            group["threshold"] = int(theta)

    def _initial(self, param: torch.Tensor, bits: int) -> torch.Tensor:
        return torch.zeros(param.shape, dtype=state_dtype(bits), device=param.device)

    def _apply(self, param, state, update, group):
        return counter_update(param, state, update, group["bits"], group["leak_shift"],
                              int(group["threshold"]))

    def state_bits(self, group: dict[str, Any]) -> int:
        return int(group["bits"]) + 1


class HiddenInteger(IntegerSynapseOptimizer):
    """A hidden b-bit integer weight: h ← sat_b(h − u), w = sign(h) (sign(0) = +1); h starts at
    w · ⌈2^(b−1) / 8⌉ (:func:`hidden_initial`; see the module docstring).

    Args:
        params: ±1-valued tensors, or parameter groups.
        bits: b ∈ [2, 16].
        scale, seed: see :class:`IntegerSynapseOptimizer`.
    """

    STATE = "hidden"

    def __init__(self, params, bits: int = 8, scale: float = 1.0, seed: int = 0) -> None:
        super().__init__(params, {}, bits, scale, seed)

    def _initial(self, param: torch.Tensor, bits: int) -> torch.Tensor:
        start = hidden_initial(bits)
        return torch.where(param >= 0, start, -start).to(state_dtype(bits))

    def _apply(self, param, state, update, group):
        return hidden_update(param, state, update, group["bits"])

    def state_bits(self, group: dict[str, Any]) -> int:
        return int(group["bits"])
