"""The single-layer fully binary baseline: a CP+R committee machine with a fixed grouping
layer (Baldassi et al. 2007; the "fully binary state of the art" of Colombo et al. 2024).

One binary hidden layer of n units with integer hidden weights H (n × n_in), split into
committees of ``committee_size`` (odd) consecutive units; committees are dealt to the
classes in order (``committees_per_class`` each), a fixed grouping that is never trained:

    a = sign(H) · x,   s = sign(a)                       (XNOR + popcount)
    vote_m = sign(Σ_{j∈m} s_j)                           (odd size: never 0)
    score_c = Σ_{m of class c} vote_m;   prediction = argmax score (first on ties)
    mistake ⇔ argmax ≠ y  or  score_y − max_{c≠y} score_c < rob,  rob = ⌊robustness · per_class⌋

For a mistaken sample, the committees of the label should vote +1 and those of the rival
(the best other class) −1. A committee voting wrong is fixed by least action: of its
units whose sign disagrees with the wanted vote, the k = (|Σ s| + 1) / 2 with the least
|a| (the fewest and cheapest flips that turn the vote) are updated H[j] += 2·wanted·x.
Increments are summed over the batch; reinforcement and clipping are those of
:mod:`binlearn.rules.local_binary`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

from binlearn.binary.kernels.numba_cpu import pack_sign_matrix, xnor_popcount_dense
from binlearn.binary.packing import to_numpy_words
from binlearn.rules.local_binary import (
    HIDDEN_DTYPES,
    BinaryLayer,
    StepResult,
    apply_increment,
    reinforce,
)

__all__ = ["CommitteeParameters", "CommitteeMachine", "init_committee", "committee_scores",
           "committee_predict", "cpr_step"]


@dataclass(frozen=True)
class CommitteeParameters:
    """robustness: margin as a fraction of committees per class; reinforcement: p_0;
    clip: bound on |H| or None; probability_bits: resolution of p_r."""

    robustness: float = 0.25
    reinforcement: float = 0.5
    clip: int | None = None
    probability_bits: int = 16


@dataclass
class CommitteeMachine:
    """layer: the hidden layer (its classifier fields are unused: empty tensors);
    committee_size: odd units per committee; committees_per_class: committees per class."""

    layer: BinaryLayer
    committee_size: int
    committees_per_class: int
    num_classes: int


def init_committee(in_features: int, hidden: int, committee_size: int, num_classes: int,
                   init_std: float = 64.0, hidden_dtype: str = "int16",
                   generator: torch.Generator | None = None, clip: int | None = None) -> CommitteeMachine:
    """H ~ round(N(0, init_std²)) (saturated to the dtype and to ±clip, as
    :func:`binlearn.rules.local_binary.init_layers`); hidden must be num_classes ·
    committees_per_class · committee_size."""
    if committee_size % 2 == 0:
        raise ValueError(f"committee_size must be odd (no tied votes), got {committee_size}")
    if hidden % (committee_size * num_classes):
        raise ValueError(f"hidden={hidden} must be a multiple of committee_size × classes "
                         f"= {committee_size * num_classes}")
    dtype = HIDDEN_DTYPES[hidden_dtype]
    limit = torch.iinfo(dtype).max if clip is None else min(clip, torch.iinfo(dtype).max)
    normal = torch.randn(hidden, in_features, generator=generator, dtype=torch.float64)
    weights = (normal * init_std).round().clamp(-limit, limit).to(dtype)
    words = torch.from_numpy(pack_sign_matrix(weights.numpy()).view(np.int64))
    empty8, empty64 = torch.zeros(0, dtype=torch.int8), torch.zeros(0, dtype=torch.int64)
    return CommitteeMachine(BinaryLayer(weights, words, empty8, empty64), committee_size,
                            hidden // (committee_size * num_classes), num_classes)


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
def _committee_updates(pre, scores, labels, margin, committee_size, per_class, x_signs, delta, touched):
    """Least-action fixes of wrong committees for mistaken samples; returns (mistakes,
    correct, updated units)."""
    mistakes = 0
    correct = 0
    updates = 0
    chosen = np.zeros(committee_size, np.bool_)
    for b in range(pre.shape[0]):
        y = labels[b]
        best = 0
        rival = -1
        for c in range(scores.shape[1]):
            if scores[b, c] > scores[b, best]:
                best = c
            if c != y and (rival < 0 or scores[b, c] > scores[b, rival]):
                rival = c
        if best == y:
            correct += 1
        if best == y and scores[b, y] - scores[b, rival] >= margin:
            continue
        mistakes += 1
        for side in range(2):
            cls = y if side == 0 else rival
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
    return mistakes, correct, updates


def committee_scores(machine: CommitteeMachine, x_signs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(pre-activations (B, hidden) int32, class scores (B, classes) int32)."""
    layer = machine.layer
    pre = xnor_popcount_dense(pack_sign_matrix(np.ascontiguousarray(x_signs.numpy())),
                              to_numpy_words(layer.weight_words), layer.in_features)
    scores = np.empty((pre.shape[0], machine.num_classes), np.int32)
    _scores(pre, machine.committee_size, machine.committees_per_class, machine.num_classes, scores)
    return pre, scores


def committee_predict(machine: CommitteeMachine, x_signs: torch.Tensor) -> torch.Tensor:
    """argmax of the class scores (first on ties), (batch,) int64."""
    return torch.from_numpy(committee_scores(machine, x_signs)[1].argmax(axis=1).astype(np.int64))


def cpr_step(machine: CommitteeMachine, x_signs: torch.Tensor, labels: torch.Tensor,
             params: CommitteeParameters, seed: int, reduce_increment=None) -> StepResult:
    """One mini-batch of CP+R on the committee machine, in place (see module docstring).

    Args: as :func:`binlearn.rules.local_binary.local_binary_step`.
    """
    pre, scores = committee_scores(machine, x_signs)
    layer = machine.layer
    delta = np.zeros(tuple(layer.hidden.shape), np.int32)
    touched = np.zeros(layer.out_features, np.bool_)
    margin = int(params.robustness * machine.committees_per_class)
    mistakes, correct, updates = _committee_updates(
        pre, scores, labels.cpu().numpy().astype(np.int64), margin, machine.committee_size,
        machine.committees_per_class, np.ascontiguousarray(x_signs.numpy()), delta, touched)
    if reduce_increment is not None:
        delta = np.ascontiguousarray(reduce_increment(torch.from_numpy(delta)).numpy())
        touched = delta.any(axis=1)
    apply_increment(layer, delta, touched, params.clip)
    reinforce(layer, seed, 0, params.probability_bits, params.clip)
    return StepResult(int(mistakes), int(correct), (int(updates),))
