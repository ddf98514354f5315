"""Bop: the binary flip optimizer, consuming any gradient estimate (EP, BPTT, STE).

    m ← (1 − γ) m + γ g;     w ← −w  where  (m · w) · α > τ     (w ∈ {−1, +1})

There are no latent float weights: the parameter holds signs, m is an exponential moving
average of the gradient g (filtered update) per synapse, and a synapse flips when the
filtered gradient agrees with its sign by more than the threshold τ (i.e. the filtered
update −m pushes against the sign). m is not reset after a flip (Laydevant et al. 2021).
γ and τ are per parameter group, so per layer; flips are counted per group — the main
health signal of training (``flip_counts()``). With binary weights W = α ⊙ w, passing α
through ``scales`` makes the test compare the filtered gradient with the *effective*
weight, m · (α w) > τ (``optimizer.scaled_threshold``); None (the default, and every
published config) is plain Bop, m · w > τ. The published thresholds are set for plain Bop:
on ``configs/laydevant2021/fc-binary-weights.toml`` (784-4096-10, τ = 5e-7, γ = 1e-4 / 1e-5,
batch-mean EP gradients, 40 MNIST batches of 64 from seed 0) plain Bop flipped 1.9 % of the
first layer's weights and 8.1 % of the output layer's, while the α-scaled test (α ≈ 0.018
and 0.008) flipped none.

Reference: Helwegen et al., "Latent weights do not exist", NeurIPS 2019 (Bop);
Laydevant et al., CVPRW 2021 (the EP variant with per-layer γ and threshold).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

__all__ = ["Bop", "bop_update", "bop_update_reference"]

# the fused numba pass; bop_update_reference (plain torch) is its oracle
@numba.njit(cache=True)
def _bop_kernel(weight, momentum, gradient, alpha, gamma, threshold,
                flip_on_equal):  # pragma: no cover
    # one fused pass over a contiguous block sharing one α (serial: on a shared 2-core
    # machine a second thread only waits); float32 throughout, the same arithmetic as
    # the torch reference for γ < 0.5. A flat loop (no row indexing) vectorises.
    flips = 0
    for i in range(weight.size):
        m = momentum[i] + gamma * (gradient[i] - momentum[i])
        momentum[i] = m
        product = (m * weight[i]) * alpha
        if product > threshold or (flip_on_equal and product == threshold):
            weight[i] = -weight[i]
            flips += 1
    return flips


def _scale_view(weight: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    if scale is None:
        return torch.ones(1, dtype=weight.dtype, device=weight.device)
    if scale.numel() not in (1, weight.shape[0]):
        raise ValueError(f"Bop scale must have 1 or {weight.shape[0]} values, got {scale.numel()}")
    return scale.detach().reshape(-1)


def bop_update_reference(weight: torch.Tensor, momentum: torch.Tensor, gradient: torch.Tensor,
                         gamma: float, threshold: float, flip_on_equal: bool = False,
                         scale: torch.Tensor | None = None):
    """m ← (1 − γ) m + γ g; w ← −w where (m · w) · α > τ (>= with ``flip_on_equal``).

    In place on ``weight`` (±1) and ``momentum``; returns the number of flips. ``scale``:
    α, one value or one per row (output unit / channel) of ``weight``; None: 1. Plain torch,
    any device: the reference of the fast path.
    """
    momentum.lerp_(gradient, gamma)
    compare = torch.ge if flip_on_equal else torch.gt
    alpha = _scale_view(weight, scale)
    shape = (-1,) + (1,) * (weight.dim() - 1) if alpha.numel() > 1 else (1,)
    flip = compare((momentum * weight) * alpha.view(shape), threshold)
    weight.mul_(flip.to(weight.dtype).mul_(-2.0).add_(1.0))  # w · (1 − 2·flip), no indexing
    return flip.sum()


def bop_update(weight: torch.Tensor, momentum: torch.Tensor, gradient: torch.Tensor,
               gamma: float, threshold: float, flip_on_equal: bool = False,
               scale: torch.Tensor | None = None):
    """Same as :func:`bop_update_reference`; a fused numba pass for contiguous float32 CPU
    tensors (about 6× fewer memory passes), the torch reference otherwise."""
    fast = (weight.device.type == "cpu"
            and weight.dtype == torch.float32 and momentum.dtype == torch.float32
            and weight.is_contiguous() and momentum.is_contiguous()
            and not weight.requires_grad and gamma < 0.5)
    if not fast:
        return bop_update_reference(weight, momentum, gradient, gamma, threshold, flip_on_equal,
                                    scale)
    gradient = gradient.to(torch.float32).contiguous()
    alpha = _scale_view(weight, scale).to(torch.float32).numpy()
    flat = (weight.view(-1).numpy(), momentum.view(-1).numpy(), gradient.view(-1).numpy())
    gamma32, threshold32 = np.float32(gamma), np.float32(threshold)
    if alpha.size == 1:
        return _bop_kernel(*flat, alpha[0], gamma32, threshold32, bool(flip_on_equal))
    row = weight.numel() // alpha.size  # one α per output unit / channel: one block each
    return sum(_bop_kernel(*(a[r * row:(r + 1) * row] for a in flat), alpha[r], gamma32,
                           threshold32, bool(flip_on_equal)) for r in range(alpha.size))


class FlipCountingOptimizer(torch.optim.Optimizer):
    """An optimizer of ±1 parameters that counts sign flips in its state (``flips``) and keeps
    the dtypes of its state tensors through a checkpoint (Bop, the integer-synapse rules)."""

    def load_state_dict(self, state_dict) -> None:
        """torch's loader casts every state tensor of a float parameter to the parameter's
        dtype, which turns the int64 ``flips`` counters into float32: load, then give each
        state tensor back the dtype it was saved with (a resumed run is the same run)."""
        saved = [{key: value.dtype for key, value in state_dict["state"].get(index, {}).items()
                  if isinstance(value, torch.Tensor)}
                 for group in state_dict["param_groups"] for index in group["params"]]
        super().load_state_dict(state_dict)
        params = [param for group in self.param_groups for param in group["params"]]
        for param, dtypes in zip(params, saved, strict=True):
            state = self.state.get(param, {})
            for key, dtype in dtypes.items():
                state[key] = state[key].to(dtype)

    def flip_counts(self, reset: bool = True) -> list[int]:
        """Flips per parameter group since the last reset (one group per layer)."""
        counts = []
        for group in self.param_groups:
            total = 0
            for param in group["params"]:
                state = self.state.get(param)
                if state and "flips" in state:
                    total += int(state["flips"])
                    if reset:
                        state["flips"].zero_()
            counts.append(total)
        return counts


class Bop(FlipCountingOptimizer):
    """Flip signs of ±1 parameters from a filtered gradient.

    Args:
        params: ±1-valued tensors, or parameter groups (dicts) with their own ``gamma`` /
            ``threshold``.
        gamma: γ ∈ (0, 1], adaptivity rate of the moving average.
        threshold: τ >= 0.
        flip_on_equal: flip when m · w >= τ instead of > τ (the reference's conv code).
        scales: one α tensor (or None) per parameter group, 1 or one value per row of the
            group's parameters; kept by reference (a learned α is seen as it changes) and
            outside the param groups (so ``load_state_dict`` does not replace it).
    """

    def __init__(self, params, gamma: float = 1e-4, threshold: float = 1e-7,
                 flip_on_equal: bool = False, scales=None) -> None:
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"Bop gamma (γ) must be in (0, 1], got {gamma}")
        if not threshold >= 0.0:
            raise ValueError(f"Bop threshold (τ) must be >= 0, got {threshold}")
        defaults = {"gamma": float(gamma), "threshold": float(threshold),
                    "flip_on_equal": bool(flip_on_equal)}
        super().__init__(params, defaults)
        for group in self.param_groups:
            if not 0.0 < group["gamma"] <= 1.0:
                raise ValueError(f"Bop gamma (γ) must be in (0, 1], got {group['gamma']}")
            if not group["threshold"] >= 0.0:
                raise ValueError(f"Bop threshold (τ) must be >= 0, got {group['threshold']}")
        scales = [None] * len(self.param_groups) if scales is None else list(scales)
        if len(scales) != len(self.param_groups):
            raise ValueError(f"Bop got {len(scales)} scales for {len(self.param_groups)} groups")
        self.scales = scales

    @torch.no_grad()
    def step(self, closure=None):
        """One filtered update and flip for every parameter with a ``.grad``."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group, scale in zip(self.param_groups, self.scales, strict=True):
            gamma, threshold = group["gamma"], group["threshold"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["momentum"] = torch.zeros_like(param)
                    state["flips"] = torch.zeros((), dtype=torch.int64, device=param.device)
                state["flips"] += bop_update(param.data, state["momentum"], param.grad,
                                             gamma, threshold, group["flip_on_equal"], scale)
        return loss

