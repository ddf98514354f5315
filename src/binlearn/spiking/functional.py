"""Integrate-and-fire neurons as pure functions (the functional core of :mod:`binlearn.spiking`).

One discrete time step of a layer of integrate-and-fire (IF) neurons::

    v' = v + I                          integrate the input current
    s  = H(v' − θ) = 1 if v' > θ else 0  fire            (spike condition: v > θ, strict)
    v  ← v' − s·θ                       reset = "subtract" (keeps the residue above θ)
    v  ← v'·(1 − s)                     reset = "zero"     (forgets it; NIR's IF with v_reset = 0)

**Spike condition.** A neuron fires when its membrane is *strictly above* its threshold,
v > θ — everywhere in binlearn (this module, the simulator, the converted networks, the
spiking view of EP networks, the NIR export). It is binlearn's Heaviside convention
H(0) = 0 (:mod:`binlearn.binary.quantizers`: a binary unit is 1 iff its pre-activation is
> 0), so a Heaviside source converted with θ = its activation threshold fires exactly when
the source's unit is 1; and it is NIR's IF, which spikes when v > v_threshold.

Spikes are 0/1 in the membrane's dtype. θ is a scalar or a tensor broadcastable to the
membrane (one threshold per unit). Nothing here holds state or goes through autograd.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["RESETS", "INITS", "IFParameters", "if_step", "integrate_step",
           "initial_membrane", "spike", "check_reset", "check_init"]

RESETS = ("subtract", "zero")
"""Reset after a spike: subtract θ (the residue is kept) or set the membrane to 0."""
INITS = ("zero", "half")
"""Membrane at t = 0: 0, or θ/2 (Bu et al. 2022: halves the expected quantisation error)."""


def check_reset(reset: str) -> str:
    if reset not in RESETS:
        raise ValueError(f"reset={reset!r}; valid: {', '.join(RESETS)}")
    return reset


def check_init(init: str) -> str:
    if init not in INITS:
        raise ValueError(f"membrane init={init!r}; valid: {', '.join(INITS)}")
    return init


class IFParameters(NamedTuple):
    """Hyper-parameters of a layer of IF neurons.

    Args:
        threshold: θ, a scalar or a tensor broadcastable to the membrane, e.g. (features,)
            for a dense layer or (channels, 1, 1) for a convolutional one.
        reset: ``"subtract"`` (v ← v − θ on a spike) | ``"zero"`` (v ← 0 on a spike).
    """

    threshold: torch.Tensor | float = 1.0
    reset: str = "subtract"


def spike(membrane: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """s = H(v − θ) = 1 if v > θ else 0 (strict: a membrane exactly at θ does not fire)."""
    return (membrane > threshold).to(membrane.dtype)


def if_step(membrane: torch.Tensor, current: torch.Tensor, params: IFParameters
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """One IF step: v' = v + I; s = [v' > θ]; v ← v' − s·θ (subtract) or v'·(1 − s) (zero).

    Args:
        membrane: v, (batch, *units), float.
        current: I, the input current of this step, same shape as ``membrane``.
        params: θ and the reset (:class:`IFParameters`).
    Returns:
        (membrane after the reset, spikes in {0, 1}), both shaped like ``membrane``.

    With a constant current 0 ≤ I ≤ θ, reset by subtraction and v = 0 at t = 0, the neuron
    has fired ⌊t·I/θ⌋ spikes after t steps (one fewer when t·I/θ is an integer, as
    v > θ is strict), so its rate tends to I/θ: the ReLU it stands for, in units of θ.
    """
    integrated = membrane + current
    spikes = spike(integrated, params.threshold)
    if params.reset == "subtract":
        return integrated - spikes * params.threshold, spikes
    if params.reset == "zero":
        return integrated * (1 - spikes), spikes
    raise ValueError(f"reset={params.reset!r}; valid: {', '.join(RESETS)}")


def integrate_step(membrane: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """A non-spiking integrator (the output layer of a converted network): v ← v + I."""
    return membrane + current


def initial_membrane(shape: tuple[int, ...], threshold: torch.Tensor | float, init: str = "zero", *,
                     dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
                     ) -> torch.Tensor:
    """v(0) = 0 (``init="zero"``) or θ/2 (``init="half"``), broadcast to ``shape`` = (batch, *units)."""
    membrane = torch.zeros(shape, dtype=dtype, device=device)
    if check_init(init) == "half":
        membrane = membrane + torch.as_tensor(threshold, dtype=dtype, device=device) / 2
    return membrane
