"""Binary Equilibrium-Propagation networks in the packed format: the manifest section
``dynamics`` (kind ``ep_binary_relaxation``, format version 2) and its inference engine.

A fully connected energy network with ±1 weights (one float32 α per coupling), float32
biases and binary accumulator neurons is run for T free-phase steps from s⁰ and read out
by output groups (``docs/packed-format.md`` is the specification)::

    n_l  = a_{l−1} · s_l                 XNOR + popcount, exact integer (a_0: the input bits)
    n'_l = a_{l+1} · s_{l+1}ᵀ            the same packed signs, read the other way
    u_l  = fl(fl(fl(α_l·n_l) + b_l) + fl(α_{l+1}·n'_l))     (the output layer: no n' term)
    s_l ← clamp(fl(fl(γ·u_l) + fl((1−γ)·s_l)), 0, 1),   a_l = [s_l > θ] ∈ {0, 1}
    score_c = mean_g(a_out) + τ·mean_g(s_out);   label = first argmax_c score_c

fl(·) is one float32 rounding; the means are float32 ``torch.mean`` over each class's
group of g outputs. Every product is an integer popcount; everything after it is float32
arithmetic in exactly the order the PyTorch relaxation uses (see
:func:`binlearn.energy.plan.ordered_couplings`), so the states agree bit for bit. The
schedule's groups are :mod:`binlearn.binary.schedules`' data, shared with that relaxation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from binlearn.binary.kernels import binary_dense, popcount_int64
from binlearn.binary.packed_manifest import check_choice, check_dict, check_int, fail, pack_nonnegative
from binlearn.binary.packing import from_numpy_words, pack_bits, unpack_bits, words_for
from binlearn.binary.schedules import SCHEDULES, relaxation_schedule

__all__ = ["DYNAMICS_KINDS", "SCHEDULES", "PackedCoupling", "PackedDynamics", "BinaryRelaxation",
           "dynamics_manifest", "validate_dynamics"]

DYNAMICS_KINDS = ("ep_binary_relaxation",)
NEURON_KINDS = ("binary_accumulator",)
READOUT_KINDS = ("group_mean",)

CheckArrays = Callable[[Any, dict[str, tuple[str, tuple[int, ...]]], str], dict[str, np.ndarray]]
"""(manifest ``arrays`` entry, role -> (dtype, shape), where) -> role -> validated array."""


# ----------------------------------------------------------------------------- description
@dataclass
class PackedCoupling:
    """One coupling: packed signs (out_features, words(in_features)) uint64, bit 1 ↔ +1;
    α (float32, one per coupling) and bias (out_features,) float32. ``input_values``: how
    the coupling reads its bottom layer's bits (the input's ``signed`` or ``binary``; hidden
    layers are always ``binary``, a = Heaviside)."""

    name: str
    weights: np.ndarray
    in_features: int
    input_values: str
    scale: float
    bias: np.ndarray

    @property
    def out_features(self) -> int:
        return int(self.weights.shape[0])


@dataclass
class PackedDynamics:
    """The free phase of a binary EP network: T ``steps`` under ``schedule`` (synchronous |
    even_odd) of binary accumulators (``gamma`` γ, ``threshold`` θ, ``initial_state`` s⁰),
    read out by groups of ``group_size`` outputs per class, ties broken by ``tie_break`` τ
    times the group-mean accumulator."""

    couplings: list[PackedCoupling]
    steps: int
    schedule: str
    gamma: float
    threshold: float
    initial_state: float
    group_size: int
    tie_break: float
    kind: str = "ep_binary_relaxation"

    @property
    def input_values(self) -> str:
        """How the first coupling reads the input bits."""
        return self.couplings[0].input_values


MAX_STEPS = 1_000_000
"""The most relaxation steps a packed EP model may run (what training allows for
``rule.free_steps``): a manifest asking for more is refused, not run for ever."""

def dynamics_manifest(dynamics: PackedDynamics,
                      declare: Callable[[str, np.ndarray], dict[str, Any]]) -> dict[str, Any]:
    """The manifest section of ``dynamics``; ``declare(name, array)`` stores each array and
    returns its ``{name, dtype, shape}`` entry."""
    couplings = []
    for index, coupling in enumerate(dynamics.couplings):
        prefix = f"couplings.{index}"
        roles: dict[str, np.ndarray] = {"weights": np.ascontiguousarray(coupling.weights, dtype=np.uint64),
                 "scale": np.array([coupling.scale], dtype=np.float32),
                 "bias": np.ascontiguousarray(coupling.bias, dtype=np.float32)}
        couplings.append({
            "name": coupling.name, "in_features": int(coupling.in_features),
            "out_features": coupling.out_features, "input_values": coupling.input_values,
            "arrays": {role: declare(f"{prefix}.{role}", array) for role, array in roles.items()},
        })
    return {
        "kind": dynamics.kind, "steps": int(dynamics.steps), "schedule": dynamics.schedule,
        "neuron": {"kind": "binary_accumulator", "gamma": float(dynamics.gamma),
                   "threshold": float(dynamics.threshold), "initial_state": float(dynamics.initial_state)},
        "readout": {"kind": "group_mean", "group_size": int(dynamics.group_size),
                    "tie_break": float(dynamics.tie_break)},
        "couplings": couplings,
    }


# ----------------------------------------------------------------------------- validation
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _number(value: Any, where: str, source: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or abs(value) > _FLOAT32_MAX):
        raise fail(source, f"manifest {where} must be a finite float32 number, got {value!r}")
    return float(value)


def validate_dynamics(spec: Any, features: int, input_values: str, num_classes: int, padding: Callable,
                      check_arrays: CheckArrays, source: str) -> None:
    """Check a ``dynamics`` section against the input stage and the file's arrays.

    Args:
        spec: the manifest's ``dynamics`` value.
        features, input_values: the input stage's F and value kind.
        num_classes: the manifest's ``num_classes``.
        padding: in_features -> the uint64 mask of the last word's padding bits.
        check_arrays: validates one ``arrays`` entry (see :data:`CheckArrays`).
        source: the file, for messages.
    Raises:
        PackedFormatError: one line naming the first problem.
    """
    spec = check_dict(spec, "dynamics", source)
    check_choice(spec.get("kind"), DYNAMICS_KINDS, "dynamics.kind", source)
    check_int(spec.get("steps"), "dynamics.steps", source, 1, MAX_STEPS)
    check_choice(spec.get("schedule"), SCHEDULES, "dynamics.schedule", source)
    neuron = check_dict(spec.get("neuron"), "dynamics.neuron", source)
    check_choice(neuron.get("kind"), NEURON_KINDS, "dynamics.neuron.kind", source)
    gamma = _number(neuron.get("gamma"), "dynamics.neuron.gamma", source)
    if not 0 < gamma <= 1:
        raise fail(source, f"manifest dynamics.neuron.gamma must be in (0, 1], got {gamma!r}")
    for key in ("threshold", "initial_state"):
        _number(neuron.get(key), f"dynamics.neuron.{key}", source)
    readout = check_dict(spec.get("readout"), "dynamics.readout", source)
    check_choice(readout.get("kind"), READOUT_KINDS, "dynamics.readout.kind", source)
    group_size = check_int(readout.get("group_size"), "dynamics.readout.group_size", source, 1)
    _number(readout.get("tie_break"), "dynamics.readout.tie_break", source)
    couplings = spec.get("couplings")
    if not isinstance(couplings, list) or not couplings:
        raise fail(source, "manifest dynamics.couplings must be a non-empty list")
    width, reads = features, input_values
    for index, coupling in enumerate(couplings):
        where = f"dynamics.couplings[{index}]"
        coupling = check_dict(coupling, where, source)
        if not isinstance(coupling.get("name"), str) or not coupling["name"]:
            raise fail(source, f"manifest {where}.name must be a non-empty string")
        in_features = check_int(coupling.get("in_features"), f"{where}.in_features", source, 1)
        out_features = check_int(coupling.get("out_features"), f"{where}.out_features", source, 1)
        if in_features != width:
            raise fail(source, f"manifest {where}.in_features = {in_features}, but its bottom layer has "
                                f"{width} features")
        if coupling.get("input_values") != reads:
            raise fail(source, f"manifest {where}.input_values = {coupling.get('input_values')!r}, but its "
                                f"bottom layer's bits are {reads!r}")
        found = check_arrays(coupling.get("arrays"),
                             {"weights": ("uint64", (out_features, words_for(in_features))),
                              "scale": ("float32", (1,)), "bias": ("float32", (out_features,))}, where)
        pad = padding(in_features)
        if pad and (found["weights"][:, -1] & pad).any():
            raise fail(source, f"{where} weights have padding bits set (bits past in_features must be 0)")
        for role in ("scale", "bias"):
            if not np.isfinite(found[role]).all():
                raise fail(source, f"{where} {role} values must be finite")
        width, reads = out_features, "binary"
    if width != num_classes * group_size:
        raise fail(source, f"manifest dynamics: the output layer has {width} neurons, but num_classes × "
                            f"group_size = {num_classes} × {group_size}")


# ----------------------------------------------------------------------------- the engine
class BinaryRelaxation:
    """The free-phase relaxation of a validated ``ep_binary_relaxation`` section.

    Integer products with :func:`~binlearn.binary.kernels.binary_dense`; the float32 steps
    as torch CPU element-wise operations (one IEEE rounding each, no fused multiply-add).
    """

    def __init__(self, spec: dict[str, Any], arrays: dict[str, np.ndarray], bit_order: str) -> None:
        self.bit_order = bit_order
        self.steps: int = spec["steps"]
        neuron, readout = spec["neuron"], spec["readout"]
        # the float32 values torch uses for these Python scalars (it casts them to float32)
        self.gamma = float(np.float32(neuron["gamma"]))
        self.keep = float(np.float32(1.0 - neuron["gamma"]))
        self.threshold = float(np.float32(neuron["threshold"]))
        self.initial = float(np.float32(neuron["initial_state"]))
        self.group_size: int = readout["group_size"]
        self.tie_break = float(np.float32(readout["tie_break"]))
        self.couplings = [self._prepare(c, arrays) for c in spec["couplings"]]
        self.sizes = [c["out_features"] for c in spec["couplings"]]
        self.groups = relaxation_schedule(spec["schedule"]).groups(len(self.sizes))

    def _prepare(self, coupling: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        names = {role: entry["name"] for role, entry in coupling["arrays"].items()}
        words = from_numpy_words(arrays[names["weights"]])
        in_features, out_features = coupling["in_features"], coupling["out_features"]
        prepared = {"in": in_features, "out": out_features, "words": words,
                    "alpha": float(arrays[names["scale"]][0]),
                    "bias": torch.from_numpy(arrays[names["bias"]])}
        # Σ_k s_k per row: the correction from ±1 to {0, 1} inputs (None: ±1 inputs)
        ones = popcount_int64(words).sum(dim=1).numpy()
        prepared["row_sums"] = ((2 * ones - in_features).astype(np.float32)
                                if coupling["input_values"] == "binary" else None)
        # the transposed signs (in, words(out)) for the drive down from the top layer
        bits = unpack_bits(words, in_features, self.bit_order)
        prepared["words_t"] = pack_bits(bits.t().contiguous(), self.bit_order)
        ones = bits.sum(dim=0, dtype=torch.int64).numpy()
        prepared["column_sums"] = (2 * ones - out_features).astype(np.float32)
        return prepared

    # -- the pieces -----------------------------------------------------------------------
    def _pack(self, bits: torch.Tensor) -> np.ndarray:
        """Packed bits (batch, words) uint64 from a (batch, features) bool tensor."""
        return pack_nonnegative(bits.numpy().view(np.int8) - np.int8(1), self.bit_order)  # 1 -> 0 >= 0

    @staticmethod
    def _drive(words: np.ndarray, weights: torch.Tensor, features: int, sums: np.ndarray | None,
               alpha: float, base: torch.Tensor) -> torch.Tensor:
        """fl(fl(α·n) + base), n = the exact integer product of the packed bits with the signs.

        ±1 inputs: n = d = K − 2·popcount(x XOR s). {0, 1} inputs: n = (d + Σ s) / 2, and
        fl(α·n) = fl((d + Σ s)·(α/2)) — the same real number rounded once, since halving is
        exact — which saves a pass. d + Σ s is an integer below 2^24 in magnitude: exact in
        float32.
        """
        dots = binary_dense(from_numpy_words(words), weights, features).numpy()  # int32
        if sums is None:
            return torch.from_numpy(dots.astype(np.float32)).mul_(alpha).add_(base)
        total = torch.from_numpy(np.add(dots, sums, dtype=np.float32))  # (numpy converts faster)
        half = alpha * 0.5
        if float(np.float32(half)) != half:  # α/2 not a float32 (|α| < 2^-125): halve separately
            return total.mul_(0.5).mul_(alpha).add_(base)
        return total.mul_(half).add_(base)

    def _up(self, index: int, bottom: np.ndarray) -> torch.Tensor:
        """fl(fl(α_l·n_l) + b_l): coupling ``index`` driving its top layer."""
        c = self.couplings[index]
        return self._drive(bottom, c["words"], c["in"], c["row_sums"], c["alpha"], c["bias"])

    def _down(self, index: int, top: np.ndarray, base: torch.Tensor) -> torch.Tensor:
        """fl(fl(α·n') + base): coupling ``index`` driving its bottom layer from the top's bits."""
        c = self.couplings[index]
        return self._drive(top, c["words_t"], c["out"], c["column_sums"], c["alpha"], base)

    def _step(self, state: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
        """clamp(fl(fl(γ·u) + fl((1−γ)·s)), 0, 1), in ``drive`` (``state`` is overwritten)."""
        return drive.mul_(self.gamma).add_(state.mul_(self.keep)).clamp_(0.0, 1.0)

    # -- inference ------------------------------------------------------------------------
    def relax(self, words: np.ndarray) -> list[torch.Tensor]:
        """The accumulators (batch, size_l) float32 of every layer after ``steps`` steps,
        from packed input bits (batch, words(F))."""
        batch, count = words.shape[0], len(self.sizes)
        states = [torch.full((batch, size), self.initial, dtype=torch.float32) for size in self.sizes]
        bits = [self._pack(state > self.threshold) for state in states]
        input_drive = self._up(0, words)  # the clamped input's drive, computed once
        last = count - 1
        for _ in range(self.steps):
            for group in self.groups:
                updated = {}
                for index in group:
                    drive = input_drive if index == 0 else self._up(index, bits[index - 1])
                    if index < last:
                        drive = self._down(index + 1, bits[index + 1], drive)
                    elif index == 0:
                        drive = drive.clone()  # the shared input drive is never overwritten
                    updated[index] = self._step(states[index], drive)
                for index, state in updated.items():
                    states[index] = state
                    bits[index] = self._pack(state > self.threshold)
        return states

    def scores(self, output: torch.Tensor) -> np.ndarray:
        """score_c = mean_g(a) + τ·mean_g(s) (batch, classes) float32 from the output accumulators."""
        grouped = output.reshape(output.shape[0], -1, self.group_size)
        activity = (grouped > self.threshold).to(torch.float32).mean(dim=2)
        return (activity + self.tie_break * grouped.mean(dim=2)).numpy()

    def forward(self, words: np.ndarray) -> list[np.ndarray]:
        """Every layer's packed activation bits (batch, words(size_l)) uint64 after the
        relaxation, then the output scores (batch, classes) float32."""
        states = self.relax(np.ascontiguousarray(words, dtype=np.uint64))
        return [*(self._pack(s > self.threshold) for s in states), self.scores(states[-1])]
