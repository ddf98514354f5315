"""Energy-based (Hopfield-like) networks — the model, not the learning.

    Φ(x, s) = Σ_c a_{c+1} · (P(W_c ∗ a_c) + b_c),     s_l ← step_l(s_l, ∂Φ/∂a_l)

Build a network from couplings (:class:`Dense`, :class:`ConvPool`), weight behaviours
(:class:`FloatWeights`, :class:`BinaryWeights`), neuron objects (:class:`HardSigmoid`,
:class:`BinaryAccumulator`) and a cost (:class:`SquaredError` with output groups,
:class:`CrossEntropyReadout`), or with :func:`fully_connected` / :func:`convolutional`;
relax it with :func:`relax` under a schedule (a :class:`RelaxationSchedule`, or its name
``"synchronous"`` or ``"even_odd"``), one step of which is :func:`relax_step`; a nudged phase
places its force with :class:`DriveNudge`, :class:`StateNudge` or :class:`FreeDriveNudge`.
How each batch's drives are computed fast is :func:`prepare`'s :class:`RelaxationPlan`
(:mod:`binlearn.energy.plan`), not a parameter of the math.
Learning rules live in :mod:`binlearn.rules` (EP, BPTT, Bop).
"""

from binlearn.energy.costs import CrossEntropyReadout, SquaredError
from binlearn.energy.couplings import BinaryWeights, ConvPool, Coupling, Dense, FloatWeights
from binlearn.energy.network import EnergyNet, convolutional, fully_connected
from binlearn.energy.neurons import BinaryAccumulator, HardSigmoid
from binlearn.energy.relax import (
    EVEN_ODD,
    FREE_STOPS,
    NUDGE_PLACEMENTS,
    SCHEDULES,
    SYNCHRONOUS,
    DivergenceError,
    DriveNudge,
    FreeDriveNudge,
    Nudge,
    NudgePlacement,
    RelaxationContext,
    RelaxationPlan,
    RelaxationSchedule,
    StateNudge,
    check_stop,
    nudge_placement,
    prepare,
    relax,
    relax_step,
    relax_until,
)
from binlearn.energy.state import EnergyState

__all__ = [
    "EnergyState",
    "HardSigmoid",
    "BinaryAccumulator",
    "FloatWeights",
    "BinaryWeights",
    "Coupling",
    "Dense",
    "ConvPool",
    "SquaredError",
    "CrossEntropyReadout",
    "EnergyNet",
    "fully_connected",
    "convolutional",
    "SYNCHRONOUS",
    "EVEN_ODD",
    "SCHEDULES",
    "NUDGE_PLACEMENTS",
    "FREE_STOPS",
    "check_stop",
    "Nudge",
    "NudgePlacement",
    "DriveNudge",
    "StateNudge",
    "FreeDriveNudge",
    "nudge_placement",
    "RelaxationContext",
    "RelaxationPlan",
    "RelaxationSchedule",
    "DivergenceError",
    "prepare",
    "relax",
    "relax_until",
    "relax_step",
]
