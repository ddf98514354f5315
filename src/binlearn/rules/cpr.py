"""The single-layer fully binary baseline: a CP+R committee machine with a fixed grouping
layer (Baldassi et al. 2007; the "fully binary state of the art" of Colombo et al. 2024).

One binary hidden layer of n units with integer hidden weights H (n × n_in), split into
M = n / ``committee_size`` (odd) committees of consecutive units, a fixed grouping that is
never trained:

    a = sign(H) · x,   s = sign(a)                       (XNOR + popcount; sign(0) = +1)
    v_m = sign(Σ_{j∈m} s_j)                              (odd size: never 0)

Two variants, chosen by ``variant`` (:data:`VARIANTS`):

``"reference"`` — the baseline as the authors of Colombo et al. 2024 run it (their
``--algo-layer baldassi`` with ``--layers n-M``): a frozen random readout R (classes × M,
±1, drawn once like the local rule's classifiers, never trained) scores the votes,

    score_c = Σ_m R[c, m] · v_m;   prediction = argmax score (first on ties)
    mistake ⇔ argmax ≠ y  or  score_y − max_{c≠y} score_c < rob,  rob = ⌊robustness · M⌋

and for a mistaken sample every committee whose vote differs from its desired vote
d_m = R[y, m] updates **one** unit: of its units in error (d_m · a_j < 0, strict, as the
local rule's tie rule: a tied unit a = 0 is "not wrong", as the reference's sign(0) = 0
makes it), the one with the least |a_j| (first on ties), H[j] += 2·d_m·x; a committee with
no unit in error is left alone. Where we differ from the reference code, by our bit
convention (DESIGN.md rule 8): its readout is sign(int(N(0, 64²))) with int() truncating, so
about 1.2 % of its entries are 0 (that committee neither scores that class nor learns for
it); ours is uniform ±1. Its sign(0) = 0 lets a tied unit abstain from the vote; ours reads
it as +1, so a vote is never 0.

``"class_committees"`` — our earlier, stronger variant: committees are dealt to the
classes in order (M / classes each; n must be a multiple of committee_size × classes),

    score_c = Σ_{m of class c} v_m;   mistake as above with rob = ⌊robustness · M / classes⌋

and for a mistaken sample the committees of the label should vote +1 and those of the
rival (the best other class) −1. A committee voting wrong is fixed by least action: of its
units whose sign disagrees with the wanted vote, the k = (|Σ s| + 1) / 2 with the least |a|
(the fewest and cheapest flips that turn the vote) are updated H[j] += 2·wanted·x. On 8,000
MNIST images it beats ``"reference"`` (figures in configs/colombo2024/*-committee-2070.toml).

In both, increments are summed over the batch; reinforcement and clipping are those of
:mod:`binlearn.rules.local_binary`. Everything is integer or bit arithmetic.

Reference: C. Baldassi, A. Braunstein, N. Brunel, R. Zecchina, PNAS 104 (2007) 11079;
L. Colombo, F. Pittorino, M. Roveri, arXiv:2412.00119 (the single-layer baseline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numba import njit

from binlearn.binary.kernels.numba_cpu import pack_sign_matrix, xnor_popcount_dense
from binlearn.binary.packing import to_numpy_words
from binlearn.rules.local_binary import (
    HIDDEN_DTYPES,
    IntegerLayer,
    StepResult,
    apply_increment,
    probability_numerator,
    reinforce,
    reinforcement_probability,
    scores_verdicts,
)

__all__ = ["VARIANTS", "CommitteeParameters", "CommitteeLayer", "CommitteeMachine", "init_committee",
           "committee_scores", "committee_predict", "cpr_step", "CPR"]

VARIANTS = ("reference", "class_committees")


@dataclass(frozen=True)
class CommitteeParameters:
    """robustness: margin as a fraction of committees per class; reinforcement: p_0;
    clip: bound on |H| or None; probability_bits: resolution of p_r."""

    robustness: float = 0.25
    reinforcement: float = 0.5
    clip: int | None = None
    probability_bits: int = 16


@dataclass
class CommitteeLayer(IntegerLayer):
    """The committee machine's one hidden layer: integer hidden weights, their packed signs and
    the reinforcement counter (:class:`~binlearn.rules.local_binary.IntegerLayer`). Unlike the
    local rule's :class:`~binlearn.rules.local_binary.BinaryLayer` it has no classifier of its
    own: the committees' votes are read out by the machine."""


@dataclass
class CommitteeMachine:
    """layer: the hidden layer; committee_size: odd units per committee; num_classes: classes;
    readout: the frozen (classes, committees) int8 ±1 readout of the ``"reference"`` variant,
    None for ``"class_committees"``."""

    layer: CommitteeLayer
    committee_size: int
    num_classes: int
    readout: torch.Tensor | None = None

    @property
    def variant(self) -> str:
        return "class_committees" if self.readout is None else "reference"

    @property
    def committees(self) -> int:
        return self.layer.out_features // self.committee_size

    @property
    def committees_per_class(self) -> int:
        """Committees dealt to each class (``"class_committees"``)."""
        return self.committees // self.num_classes

    def margin(self, robustness: float) -> int:
        """rob: ⌊robustness · committees scoring a class⌋ (all M for ``"reference"``)."""
        return int(robustness * (self.committees if self.readout is not None else self.committees_per_class))

    def set_readout(self, readout: torch.Tensor) -> None:
        """Install a (classes, committees) int8 ±1 readout."""
        if tuple(readout.shape) != (self.num_classes, self.committees) or readout.dtype != torch.int8:
            raise ValueError(f"readout must be ({self.num_classes}, {self.committees}) int8, got "
                             f"{tuple(readout.shape)} {readout.dtype}")
        self.readout = readout.contiguous()


def init_committee(in_features: int, hidden: int, committee_size: int, num_classes: int,
                   init_std: float = 64.0, hidden_dtype: str = "int16",
                   generator: torch.Generator | None = None, clip: int | None = None,
                   variant: str = "reference") -> CommitteeMachine:
    """H ~ round(N(0, init_std²)) (saturated to the dtype and to ±clip, as
    :func:`binlearn.rules.local_binary.init_layers`), then for ``"reference"`` R ~ uniform
    ±1 (classes × committees), both from ``generator`` (None: torch's global one). hidden
    must be a multiple of committee_size (``"reference"``) or of committee_size · num_classes
    (``"class_committees"``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}; valid: {', '.join(VARIANTS)}")
    if committee_size % 2 == 0:
        raise ValueError(f"committee_size must be odd (no tied votes), got {committee_size}")
    group = committee_size * (num_classes if variant == "class_committees" else 1)
    if hidden % group:
        what = "committee_size × classes" if variant == "class_committees" else "committee_size"
        raise ValueError(f"hidden={hidden} must be a multiple of {what} = {group}")
    dtype = HIDDEN_DTYPES[hidden_dtype]
    limit = torch.iinfo(dtype).max if clip is None else min(clip, torch.iinfo(dtype).max)
    normal = torch.randn(hidden, in_features, generator=generator, dtype=torch.float64)
    weights = (normal * init_std).round().clamp(-limit, limit).to(dtype)
    words = torch.from_numpy(pack_sign_matrix(weights.numpy()).view(np.int64))
    machine = CommitteeMachine(CommitteeLayer(weights, words), committee_size, num_classes)
    if variant == "reference":
        # drawn after H, so H is the same draw in both variants
        readout = (torch.randint(0, 2, (num_classes, machine.committees), generator=generator) * 2 - 1)
        machine.set_readout(readout.to(torch.int8))
    return machine


@njit(cache=True)
def _scores(pre, committee_size, per_class, classes, scores):
    for b in range(pre.shape[0]):
        for c in range(classes):
            total = 0
            for m in range(c * per_class, (c + 1) * per_class):
                votes = 0
                for j in range(m * committee_size, (m + 1) * committee_size):
                    votes += 1 if pre[b, j] >= 0 else -1
                total += 1 if votes > 0 else -1
            scores[b, c] = total


@njit(cache=True)
def _committee_updates(pre, labels, mistakes, rivals, committee_size, per_class, x_signs, delta, touched):
    """Least-action fixes of wrong committees for mistaken samples; returns updated units."""
    updates = 0
    chosen = np.zeros(committee_size, np.bool_)
    for b in range(pre.shape[0]):
        if not mistakes[b]:
            continue
        y = labels[b]
        for side in range(2):
            cls = y if side == 0 else rivals[b]
            wanted = 1 if side == 0 else -1
            for m in range(cls * per_class, (cls + 1) * per_class):
                first = m * committee_size
                votes = 0
                for j in range(first, first + committee_size):
                    votes += 1 if pre[b, j] >= 0 else -1
                if (votes > 0) == (wanted > 0):
                    continue
                needed = (abs(votes) + 1) // 2
                chosen[:] = False
                for _ in range(needed):
                    pick = -1
                    pick_size = 1 << 30
                    for j in range(first, first + committee_size):
                        a = pre[b, j]
                        s = 1 if a >= 0 else -1
                        if s != wanted and not chosen[j - first]:
                            size = a if a >= 0 else -a
                            if size < pick_size:
                                pick_size = size
                                pick = j
                    chosen[pick - first] = True
                    for k in range(x_signs.shape[1]):
                        delta[pick, k] += 2 * wanted * x_signs[b, k]
                    touched[pick] = True
                    updates += 1
    return updates


@njit(cache=True)
def _votes(pre, committee_size, votes):
    """v[b, m] = sign(Σ_{j∈m} sign(a[b, j])) with sign(0) = +1 (odd committees never tie)."""
    for b in range(pre.shape[0]):
        for m in range(votes.shape[1]):
            total = 0
            for j in range(m * committee_size, (m + 1) * committee_size):
                total += 1 if pre[b, j] >= 0 else -1
            votes[b, m] = 1 if total > 0 else -1


@njit(cache=True)
def _readout_scores(votes, readout, scores):
    """score[b, c] = Σ_m R[c, m] · v[b, m] (integers)."""
    for b in range(votes.shape[0]):
        for c in range(readout.shape[0]):
            total = 0
            for m in range(readout.shape[1]):
                total += np.int32(readout[c, m]) * np.int32(votes[b, m])  # type: ignore[assignment]
            scores[b, c] = total


@njit(cache=True)
def _reference_updates(pre, votes, labels, mistakes, committee_size, readout, x_signs, delta, touched):
    """One-unit fixes of the committees voting against R[y] for mistaken samples; returns
    updated units."""
    updates = 0
    for b in range(pre.shape[0]):
        if not mistakes[b]:
            continue
        y = labels[b]
        for m in range(votes.shape[1]):
            wanted = np.int32(readout[y, m])
            if votes[b, m] == wanted:
                continue
            pick = -1
            pick_size = 1 << 30
            for j in range(m * committee_size, (m + 1) * committee_size):
                a = pre[b, j]
                if wanted * a < 0:  # strict: a tied unit (a = 0) is not in error
                    size = a if a >= 0 else -a
                    if size < pick_size:
                        pick_size = size
                        pick = j
            if pick < 0:
                continue
            for k in range(x_signs.shape[1]):
                delta[pick, k] += 2 * wanted * x_signs[b, k]
            touched[pick] = True
            updates += 1
    return updates


def _pre_activations(machine: CommitteeMachine, x_signs: torch.Tensor) -> np.ndarray:
    layer = machine.layer
    return xnor_popcount_dense(pack_sign_matrix(np.ascontiguousarray(x_signs.numpy())),
                               to_numpy_words(layer.weight_words), layer.in_features)


def _votes_scores(machine: CommitteeMachine, pre: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    scores = np.empty((pre.shape[0], machine.num_classes), np.int32)
    if machine.readout is None:
        _scores(pre, machine.committee_size, machine.committees_per_class, machine.num_classes, scores)
        return None, scores
    votes = np.empty((pre.shape[0], machine.committees), np.int8)
    _votes(pre, machine.committee_size, votes)
    _readout_scores(votes, machine.readout.numpy(), scores)
    return votes, scores


def committee_scores(machine: CommitteeMachine, x_signs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(pre-activations (B, hidden) int32, class scores (B, classes) int32).

    x_signs: (batch, n_in) int8 in {−1, +1}."""
    pre = _pre_activations(machine, x_signs)
    return pre, _votes_scores(machine, pre)[1]


def committee_predict(machine: CommitteeMachine, x_signs: torch.Tensor) -> torch.Tensor:
    """argmax of the class scores (first on ties), (batch,) int64."""
    return torch.from_numpy(committee_scores(machine, x_signs)[1].argmax(axis=1).astype(np.int64))


def cpr_step(machine: CommitteeMachine, x_signs: torch.Tensor, labels: torch.Tensor,
             params: CommitteeParameters, seed: int, reduce_increment=None) -> StepResult:
    """One mini-batch of CP+R on the committee machine, in place; the machine's variant
    (its readout or none) picks the update (see module docstring).

    Args: as :func:`binlearn.rules.local_binary.local_binary_step`.
    """
    pre = _pre_activations(machine, x_signs)
    votes, scores = _votes_scores(machine, pre)
    layer = machine.layer
    delta = np.zeros(tuple(layer.hidden.shape), np.int32)
    touched: np.ndarray = np.zeros(layer.out_features, np.bool_)
    margin = machine.margin(params.robustness)
    labels_np = labels.cpu().numpy().astype(np.int64)
    x_np = np.ascontiguousarray(x_signs.numpy())
    mistaken = np.zeros(len(labels_np), np.bool_)
    rivals = np.zeros(len(labels_np), np.int64)
    correct = scores_verdicts(scores, labels_np, margin, mistaken, rivals)
    mistakes = int(mistaken.sum())
    if votes is None:
        updates = _committee_updates(pre, labels_np, mistaken, rivals, machine.committee_size,
                                     machine.committees_per_class, x_np, delta, touched)
    else:
        assert machine.readout is not None  # votes come from the readout variant
        updates = _reference_updates(pre, votes, labels_np, mistaken, machine.committee_size,
                                     machine.readout.numpy(), x_np, delta, touched)
    if reduce_increment is not None:
        delta = np.ascontiguousarray(reduce_increment(torch.from_numpy(delta)).numpy())
        touched = np.asarray(delta.any(axis=1))
    apply_increment(layer, delta, touched, params.clip)
    reinforce(layer, seed, 0, params.probability_bits, params.clip)
    return StepResult(int(mistakes), int(correct), (int(updates),))


@dataclass(frozen=True)
class CPR:
    """CP+R as a :class:`~binlearn.rules.base.LocalRule`: ``step(machine, x_signs, labels,
    seed=, reduce=)`` is :func:`cpr_step` with these ``params``.

    As :class:`~binlearn.rules.local_binary.LocalBinary`, the rule owns its state (the hidden
    weights, the reinforcement counter and the frozen readout of the ``"reference"``
    variant), kept in the machine's arrays and written by the rule alone (:meth:`start_epoch`,
    :meth:`state_dict`, :meth:`load_state_dict`).
    """

    params: CommitteeParameters

    def step(self, model: CommitteeMachine, x: torch.Tensor, y: torch.Tensor, *, seed: int,
             reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> StepResult:
        return cpr_step(model, x, y, self.params, seed, reduce)

    def predict(self, model: CommitteeMachine, x: torch.Tensor) -> torch.Tensor:
        """:func:`committee_predict`: x (batch, n_in) int8 ±1 -> (batch,) int64."""
        return committee_predict(model, x)

    def layers(self, model: CommitteeMachine) -> list[CommitteeLayer]:
        """The one layer whose hidden weights the rule trains."""
        return [model.layer]

    def start_epoch(self, model: CommitteeMachine, train_accuracy: float) -> None:
        """Set p_r for the coming epoch from the last one's training accuracy (0 before the first)."""
        layer = model.layer
        p = reinforcement_probability(self.params.reinforcement, train_accuracy, layer.in_features)
        layer.reinforcement_numerator = probability_numerator(p, self.params.probability_bits)

    def state_dict(self, model: CommitteeMachine) -> dict[str, Any]:
        """``hidden`` (tensor), ``reinforcement_numerator`` (int) and, for ``"reference"``,
        ``readout`` (tensor), copies."""
        layer = model.layer
        state: dict[str, Any] = {"hidden": layer.hidden.clone(),
                                 "reinforcement_numerator": layer.reinforcement_numerator}
        if model.readout is not None:
            state["readout"] = model.readout.clone()
        return state

    def load_state_dict(self, model: CommitteeMachine, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into ``model``; ValueError for other shapes or the other variant."""
        layer = model.layer
        if state["hidden"].shape != layer.hidden.shape or state["hidden"].dtype != layer.hidden.dtype:
            raise ValueError(f"checkpoint hidden weights {tuple(state['hidden'].shape)} do not match the "
                             f"model's {tuple(layer.hidden.shape)}")
        saved = "reference" if "readout" in state else "class_committees"
        if saved != model.variant:
            raise ValueError(f"checkpoint is of the committee variant {saved!r}, the model of "
                             f"{model.variant!r} (rule.variant)")
        if "readout" in state:
            model.set_readout(state["readout"].clone())
        layer.load_hidden(state["hidden"])
        layer.reinforcement_numerator = int(state["reinforcement_numerator"])
