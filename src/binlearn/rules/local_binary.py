"""The binary-native local rule (Colombo, Pittorino, Roveri 2024): integer hidden weights,
±1 weights and activations, a fixed random binary classifier per hidden layer.

For hidden layer l with ±1 input x (n_in), integer hidden weights H (n_out × n_in) and the
frozen classifier P (classes × n_out, ±1):

    a = sign(H) · x                   (XNOR + popcount: a = n_in − 2·popcount(x XOR w))
    s = sign(a),  score = P · s       (sign(0) = +1)
    mistake(b)  ⇔ argmax score ≠ y  or  score_y − max_{c≠y} score_c < rob
    d_j = P[y, j] (desired activation); unit j is in error ⇔ d_j · a_j < 0
    per group of G units and mistaken sample: j* = the unit in error with the least |a_j|
    ΔH[j*, :] += 2 · d_j* · x         (summed over the batch, then added with saturation)
    reinforcement: each H[j, k] with probability p_r:  H[j, k] += 2 · sign(H[j, k])
    p_r = p_0 · sqrt(1 − train_accuracy) · sqrt(2 / (π n_in))     (previous epoch)
    optional clip: H ← clamp(H, −clip, clip)

Every layer learns from its own input, activations and classifier; the next layer takes
s as input; the last layer's scores are the prediction. Everything in the update is
integer or bit arithmetic: pre-activations from the packed kernel, selection by integer
comparison, int32 increments, and Bernoulli(p_r) drawn as 64-lane bit masks from the
binary expansion of p_r = numerator / 2^bits (no float tensor is formed;
:mod:`binlearn.binary.kernels.bernoulli`).

Ties. The forward pass reads a = 0 as +1 (sign(0) = +1, DESIGN.md rule 8), but the error
test is strict, d_j · a_j < 0, as in the reference code, whose sign(0) = 0 gives a tied unit
the error signal d·a = 0 ("not wrong"). Counting a tied unit as wrong when d_j = −1 would
make it the least-|a| unit of its group (|a| = 0): with an even fan-in (784 pixels) one or
two units of a 115-unit group sit at a = 0 with d = −1 for a typical image, so most group
updates would be −2·x, and as most pixels are −1 in every image these push the first layer
towards a constant −1 output (mean activation −0.45 after one epoch instead of 0). On 8,000
MNIST images that rule gave 0.19 test accuracy after the first epoch instead of 0.60.

Reinforcement never changes a sign (it pushes away from zero, and sign(0) = +1 becomes
+2), so only rows touched by an error update are re-packed.

The kernels run serially on purpose: one mini-batch is about a millisecond of work, and
a parallel region on a shared machine waits for its slowest thread (we measured 5-10 ms
stalls on a loaded 2-core host); data parallelism belongs to the runner's ranks.

The step updates the layer arrays **in place** (DESIGN.md prefers new states): copying
two million hidden weights per mini-batch would cost as much as the whole update.

Reference: L. Colombo, F. Pittorino, M. Roveri, "Training Multi-Layer Binary Neural
Networks With (Random) Local Binary Error Signals", arXiv:2412.00119; reinforcement from
Baldassi et al., PNAS 104 (2007).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np
import torch
from numba import njit, prange

from binlearn.binary.kernels.bernoulli import bernoulli_mask_words, mix_seed, probability_digits, row_masks
from binlearn.binary.kernels.numba_cpu import (
    pack_sign_matrix,
    popcount64,
    trailing_zeros64,
    xnor_popcount_dense,
)
from binlearn.binary.packing import to_numpy_words

__all__ = ["SignNetwork",
    "LocalBinaryParameters",
    "IntegerLayer",
    "BinaryLayer",
    "StepResult",
    "init_layers",
    "input_signs",
    "forward",
    "predict",
    "LocalBinary",
    "local_binary_step",
    "local_binary_step_dense",
    "reinforcement_probability",
    "probability_numerator",
    "reinforcement_mask_words",
    "mix_seed",
    "pack_sign_tensor",
    "apply_increment",
    "reinforce",
    "HIDDEN_DTYPES",
]

HIDDEN_DTYPES = {"int16": torch.int16, "int32": torch.int32}


@dataclass(frozen=True)
class LocalBinaryParameters:
    """Hyper-parameters of the rule (paper symbols in brackets).

    group_size: units per selection group [G]; robustness: margin as a fraction of the
    layer width [rob = ⌊robustness · width⌋]; reinforcement: p_0; clip: bound on |H| or
    None; probability_bits: resolution of p_r (p_r = numerator / 2^bits).
    """

    group_size: int
    robustness: float = 0.25
    reinforcement: float = 0.5
    clip: int | None = None
    probability_bits: int = 16
    error_signal: str = "target"


@dataclass
class IntegerLayer:
    """What a local rule trains in a layer: integer hidden weights, their packed signs and the
    reinforcement counter.

    hidden: (out, in) int16|int32, the rule's state; weight_words: (out, words(in)) int64 =
    pack(hidden >= 0), the binary weights the network computes with; reinforcement_numerator:
    p_r · 2^bits (an int, the rule's counter, set by the rule's ``start_epoch``). increment: a
    scratch (out, in) int32 buffer for the summed update, all zero between steps (kept to spare
    a 3-4 MB allocation and its page faults per step; not rule state, never saved). Subclasses
    add what their rule reads beside them (:class:`BinaryLayer`,
    :class:`~binlearn.rules.cpr.CommitteeLayer`).
    """

    hidden: torch.Tensor
    weight_words: torch.Tensor
    _: KW_ONLY
    reinforcement_numerator: int = 0
    increment: np.ndarray | None = field(default=None, repr=False, compare=False)

    def increment_buffer(self) -> np.ndarray:
        """The zeroed (out, in) int32 scratch buffer (allocated on first use)."""
        if self.increment is None or self.increment.shape != tuple(self.hidden.shape):
            self.increment = np.zeros(tuple(self.hidden.shape), np.int32)
        return self.increment

    @property
    def in_features(self) -> int:
        return self.hidden.shape[1]

    @property
    def out_features(self) -> int:
        return self.hidden.shape[0]

    def load_hidden(self, hidden: torch.Tensor) -> None:
        """Install saved hidden weights and re-pack their signs (ValueError: another shape or dtype)."""
        if hidden.shape != self.hidden.shape or hidden.dtype != self.hidden.dtype:
            raise ValueError(f"checkpoint hidden weights {tuple(hidden.shape)} {hidden.dtype} do not "
                             f"match the model's {tuple(self.hidden.shape)} {self.hidden.dtype}")
        self.hidden = hidden.clone().contiguous()
        self.weight_words = pack_sign_tensor(self.hidden)


@dataclass
class BinaryLayer(IntegerLayer):
    """One hidden layer of the local rule: its integer weights (:class:`IntegerLayer`) and the
    frozen classifier that gives the layer its error signal, with its packed twin.

    classifier: (classes, out) int8 in {−1, +1}; classifier_words: (classes, words(out)) int64.
    """

    classifier: torch.Tensor
    classifier_words: torch.Tensor


@dataclass(frozen=True)
class SignNetwork(Sequence[BinaryLayer]):
    """A local-binary network as its artefacts read it: the stack of ±1 sign layers, input
    layer first (synapses sign(H), sign(0) = +1), and the last layer's frozen classifier.

    The typed model of a trained run (:attr:`binlearn.artifacts.TrainedRun.model`) from which
    the packed, spiking and NIR forms are made.
    """

    layers: tuple[BinaryLayer, ...]

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index):  # int -> a layer, slice -> a tuple of layers
        return self.layers[index]

    @property
    def hidden(self) -> list[torch.Tensor]:
        """Each layer's integer hidden weights H, (out, in); their signs are the synapses."""
        return [layer.hidden for layer in self.layers]

    @property
    def classifier(self) -> torch.Tensor:
        """(classes, last width) ±1 class-score weights of the last layer."""
        return self.layers[-1].classifier


@dataclass(frozen=True)
class StepResult:
    """mistakes: samples wrong or below the margin at the last layer; correct: samples
    whose last-layer argmax is the label; updates: (sample, unit) updates per layer."""

    mistakes: int
    correct: int
    updates: tuple[int, ...]


def pack_sign_tensor(signs: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(pack_sign_matrix(signs.numpy()).view(np.int64))


def init_layers(sizes: list[int], num_classes: int, init_std: float = 64.0,
                hidden_dtype: str = "int16", generator: torch.Generator | None = None,
                clip: int | None = None) -> list[BinaryLayer]:
    """H ~ round(N(0, init_std²)) (saturated to the dtype, and to ±clip), P ~ uniform ±1.

    Args:
        sizes: [n_in, n_1, …, n_L]; num_classes: classes; hidden_dtype: int16 | int32.
        generator: torch generator (None: the global one, which the runner seeds).
        clip: the rule's bound on |H| (None: none). The step clamps only the weights it
            changes, so the bound must hold from the start for |H| ≤ clip to hold always.
    """
    dtype = HIDDEN_DTYPES[hidden_dtype]
    limit = torch.iinfo(dtype).max if clip is None else min(clip, torch.iinfo(dtype).max)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        normal = torch.randn(fan_out, fan_in, generator=generator, dtype=torch.float64)
        hidden = (normal * init_std).round().clamp(-limit, limit).to(dtype)
        classifier = (torch.randint(0, 2, (num_classes, fan_out), generator=generator) * 2 - 1).to(torch.int8)
        layers.append(BinaryLayer(hidden, pack_sign_tensor(hidden), classifier, pack_sign_tensor(classifier)))
    return layers


def input_signs(x: torch.Tensor) -> torch.Tensor:
    """±1 inputs from binary data: +1 where x > 0, −1 elsewhere, flattened per sample.

    Args:
        x: (batch, ...) float in {0, 1} (encoding "binarize"/"thermometer") or {−1, +1}
            (signed); 0 and −1 both become −1 (bit 0), as Heaviside(0) = 0 says.
    Returns:
        (batch, features) int8 in {−1, +1}. Raises ValueError for non-binary values.
    """
    flat = np.ascontiguousarray(x.detach().reshape(x.shape[0], -1).cpu().numpy())
    signs = np.empty(flat.shape, np.int8)
    if not _binary_signs(flat, signs):
        raise ValueError("the local binary rule needs binary inputs (values in {0,1} or {-1,+1}); "
                         "set data.encoding = \"binarize\" or \"thermometer\"")
    return torch.from_numpy(signs)


@njit(cache=True)
def _binary_signs(values, signs):
    """signs = +1 where values > 0, −1 elsewhere; False if a value is not in {−1, 0, 1}."""
    for b in range(values.shape[0]):
        for k in range(values.shape[1]):
            v = values[b, k]
            if v == 1:
                signs[b, k] = 1
            elif v == 0 or v == -1:
                signs[b, k] = -1
            else:
                return False
    return True


# --------------------------------------------------------------------------- numba kernels
@njit(cache=True)
def scores_verdicts(scores, labels, margin, mistakes, rivals):
    """mistakes[b] = argmax ≠ y or score_y − max_{c≠y} < margin; rivals[b] = the first
    c ≠ y with the highest score; returns #correct."""
    correct = 0
    for b in range(scores.shape[0]):
        y = labels[b]
        best = 0
        other = -(1 << 30)
        for c in range(scores.shape[1]):
            if scores[b, c] > scores[b, best]:
                best = c
            if c != y and scores[b, c] > other:
                other = scores[b, c]
                rivals[b] = c
        if best == y:
            correct += 1
        mistakes[b] = best != y or scores[b, y] - other < margin
    return correct


@njit(cache=True)
def _select_accumulate(pre, labels, mistakes, rivals, only_discriminating, classifier, x_signs,
                       group_size, delta, touched, chosen):
    """Least-|a| unit in error per (group, mistaken sample); delta[j] += 2·d_j·x_b.

    Groups own disjoint rows of delta, so the groups could run in parallel without races.
    """
    units = pre.shape[1]
    groups = (units + group_size - 1) // group_size
    for g in prange(groups):
        start = g * group_size
        stop = min(units, start + group_size)
        count = 0
        for b in range(pre.shape[0]):
            if not mistakes[b]:
                continue
            y = labels[b]
            rival = rivals[b]
            best = -1
            best_size = 1 << 30
            for j in range(start, stop):
                if only_discriminating and classifier[y, j] == classifier[rival, j]:
                    continue
                a = pre[b, j]
                # strictly wrong only: a tie (a = 0) reads +1 but is no error (see module doc)
                if a * classifier[y, j] < 0:
                    size = a if a >= 0 else -a
                    if size < best_size:
                        best_size = size
                        best = j
            if best >= 0:
                step = 2 * np.int32(classifier[y, best])
                for k in range(x_signs.shape[1]):
                    delta[best, k] += step * x_signs[b, k]
                touched[best] = True
                count += 1
        chosen[g] = count


@njit(cache=True)
def _apply_delta(hidden, delta, touched, low, high, weight_words):
    """hidden[j] ← clamp(hidden[j] + delta[j]) for touched rows; delta rows reset; re-pack.
    (Branch-free loops over one row at a time, which LLVM vectorises.)"""
    features = hidden.shape[1]
    for j in range(hidden.shape[0]):
        if not touched[j]:
            continue
        row = hidden[j]
        increments = delta[j]
        for k in range(features):
            value = np.int64(row[k]) + increments[k]
            row[k] = min(max(value, low), high)
            increments[k] = 0
        for word in range(weight_words.shape[1]):
            acc = np.uint64(0)
            first = word * 64
            for f in range(min(64, features - first)):
                acc |= np.uint64(row[first + f] >= 0) << np.uint64(f)
            weight_words[j, word] = acc


@njit(cache=True)
def _sign_bytes(pre):
    """(B, n) int8 ±1 = sign(pre) with sign(0) = +1 (the next layer's unpacked input)."""
    out = np.empty(pre.shape, np.int8)
    for b in range(pre.shape[0]):
        for j in range(pre.shape[1]):
            out[b, j] = 1 if pre[b, j] >= 0 else -1
    return out


@njit(cache=True)
def _reinforce(hidden, seed, digits, low, high):
    """With probability numerator/2^bits per weight: H += 2·sign(H), saturated. Returns the
    number of reinforced weights. Masks are those of :func:`reinforcement_mask_words`."""
    features = hidden.shape[1]
    masks = np.empty((features + 63) // 64, np.uint64)
    total = np.uint64(0)
    for j in range(hidden.shape[0]):
        row_masks(mix_seed(seed, j), digits, features, masks)
        for word in range(masks.shape[0]):
            mask = masks[word]
            total += popcount64(mask)
            while mask:  # p_r is a few %: visiting the set bits beats a pass over all weights
                k = word * 64 + np.int64(trailing_zeros64(mask))
                mask &= mask - np.uint64(1)
                value = np.int64(hidden[j, k])
                value = value + 2 if value >= 0 else value - 2
                hidden[j, k] = min(max(value, low), high)
    return np.int64(total)


# --------------------------------------------------------------------------- the rule
def reinforcement_probability(p0: float, train_accuracy: float, in_features: int) -> float:
    """p_r = p_0 · sqrt(1 − train_accuracy) · sqrt(2 / (π · n_in)) (a scalar schedule)."""
    return p0 * math.sqrt(max(0.0, 1.0 - train_accuracy)) * math.sqrt(2.0 / (math.pi * in_features))


def probability_numerator(probability: float, bits: int) -> int:
    """round(p · 2^bits), the integer the reinforcement masks are drawn from."""
    return int(round(min(max(probability, 0.0), 1.0) * (1 << bits)))


def reinforcement_mask_words(seed: int, layer_index: int, rows: int, features: int,
                             numerator: int, bits: int) -> np.ndarray:
    """The (rows, words(features)) uint64 masks of weights a step reinforces (bit = 1),
    little bit order, padding 0 — what :func:`local_binary_step` draws for ``layer_index``."""
    return bernoulli_mask_words(mix_seed(np.uint64(seed), np.uint64(layer_index)), rows, features,
                                numerator, bits)


def _limits(layer: IntegerLayer, clip: int | None) -> tuple[int, int]:
    high = torch.iinfo(layer.hidden.dtype).max
    if clip is not None:
        high = min(high, clip)
    return -high, high


def forward(layers: Sequence[BinaryLayer], x_words: np.ndarray, in_features: int
            ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per layer: (pre-activations (B, out) int32, packed activations (B, words) uint64,
    class scores (B, classes) int32), all from the XNOR-popcount kernel."""
    outputs = []
    for layer in layers:
        pre = xnor_popcount_dense(x_words, to_numpy_words(layer.weight_words), in_features)
        s_words = pack_sign_matrix(pre)
        scores = xnor_popcount_dense(s_words, to_numpy_words(layer.classifier_words), layer.out_features)
        outputs.append((pre, s_words, scores))
        x_words, in_features = s_words, layer.out_features
    return outputs


def predict(layers: Sequence[BinaryLayer], x_signs: torch.Tensor) -> torch.Tensor:
    """argmax of the last layer's class scores (first index on ties), (batch,) int64."""
    x_words = pack_sign_matrix(x_signs.numpy())
    scores = forward(layers, x_words, x_signs.shape[1])[-1][2]
    return torch.from_numpy(scores.argmax(axis=1).astype(np.int64))


def apply_increment(layer: IntegerLayer, delta: np.ndarray, touched: np.ndarray, clip: int | None) -> None:
    """H[j] ← clamp(H[j] + delta[j]) for the touched rows (delta rows reset to 0), then
    re-pack those rows' signs. delta: (out, in) int32; touched: (out,) bool."""
    low, high = _limits(layer, clip)
    _apply_delta(layer.hidden.numpy(), delta, touched, low, high, to_numpy_words(layer.weight_words))


def reinforce(layer: IntegerLayer, seed: int, stream: int, bits: int, clip: int | None) -> int:
    """With probability numerator/2^bits per weight, H += 2·sign(H) (saturated); the masks
    are :func:`reinforcement_mask_words` (seed, stream). Returns how many were reinforced."""
    if not layer.reinforcement_numerator:
        return 0
    low, high = _limits(layer, clip)
    return int(_reinforce(layer.hidden.numpy(), np.uint64(mix_seed(np.uint64(seed), np.uint64(stream))),
                          probability_digits(layer.reinforcement_numerator, bits), low, high))


def local_binary_step(layers: Sequence[BinaryLayer], x_signs: torch.Tensor, labels: torch.Tensor,
                      params: LocalBinaryParameters, seed: int,
                      reduce_increment=None) -> StepResult:
    """One mini-batch of the rule (module docstring) on every layer, in place.

    Args:
        layers: the network, updated in place.
        x_signs: (batch, n_in) int8 in {−1, +1}; labels: (batch,) int64.
        seed: 64-bit seed of this step's reinforcement masks (drawn from torch by the caller).
        reduce_increment: None, or a function summing an int32 (out, in) increment tensor
            over data-parallel ranks (then every row is applied from the summed increment).
    Returns:
        :class:`StepResult` for the last layer (mistakes, correct) and update counts.
    """
    labels_np = labels.cpu().numpy().astype(np.int64)
    x_np = np.ascontiguousarray(x_signs.numpy())
    x_words = pack_sign_matrix(x_np)
    outputs = forward(layers, x_words, x_np.shape[1])
    updates = []
    mistakes = np.zeros(len(labels_np), np.bool_)
    correct = 0
    inputs = x_np
    for index, (layer, (pre, _, scores)) in enumerate(zip(layers, outputs, strict=True)):
        margin = int(params.robustness * layer.out_features)
        rivals = np.zeros(len(labels_np), np.int64)
        correct = scores_verdicts(scores, labels_np, margin, mistakes, rivals)
        delta = layer.increment_buffer()
        touched: np.ndarray = np.zeros(layer.out_features, np.bool_)
        groups = (layer.out_features + params.group_size - 1) // params.group_size
        chosen = np.zeros(groups, np.int64)
        _select_accumulate(pre, labels_np, mistakes, rivals, params.error_signal == "difference",
                           layer.classifier.numpy(), inputs,
                           params.group_size, delta, touched, chosen)
        if reduce_increment is not None:
            summed = np.ascontiguousarray(reduce_increment(torch.from_numpy(delta.copy())).numpy())
            delta.fill(0)
            delta, touched = summed, np.asarray(summed.any(axis=1))
        apply_increment(layer, delta, touched, params.clip)
        reinforce(layer, seed, index, params.probability_bits, params.clip)
        updates.append(int(chosen.sum()))
        # next layer's ±1 input: the activations of this forward pass (before the update)
        if index + 1 < len(layers):
            inputs = _sign_bytes(pre)
    return StepResult(int(mistakes.sum()), int(correct), tuple(updates))


@dataclass(frozen=True)
class LocalBinary:
    """The rule as a :class:`~binlearn.rules.base.LocalRule`: ``step(layers, x_signs, labels,
    seed=, reduce=)`` is :func:`local_binary_step` with these ``params``.

    The rule owns its state as an optimizer owns its slots: the integer hidden weights, the
    frozen classifiers that give each layer its error signal and the reinforcement counters
    (p_r numerators). They live in the arrays of the layers it trains (the kernels update them
    in place), and only the rule writes them: :meth:`start_epoch` sets the counters,
    :meth:`state_dict` / :meth:`load_state_dict` save and restore the whole state.
    """

    params: LocalBinaryParameters

    def step(self, model: Sequence[BinaryLayer], x: torch.Tensor, y: torch.Tensor, *, seed: int,
             reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> StepResult:
        return local_binary_step(model, x, y, self.params, seed, reduce)

    def predict(self, model: Sequence[BinaryLayer], x: torch.Tensor) -> torch.Tensor:
        """:func:`predict`: x (batch, n_in) int8 ±1 -> (batch,) int64."""
        return predict(model, x)

    def layers(self, model: Sequence[BinaryLayer]) -> list[BinaryLayer]:
        """The layers whose hidden weights the rule trains, input to output."""
        return list(model)

    def start_epoch(self, model: Sequence[BinaryLayer], train_accuracy: float) -> None:
        """Set every layer's p_r for the coming epoch from the last one's training accuracy
        (0 before the first epoch): :func:`reinforcement_probability` at ``probability_bits``."""
        for layer in model:
            p = reinforcement_probability(self.params.reinforcement, train_accuracy, layer.in_features)
            layer.reinforcement_numerator = probability_numerator(p, self.params.probability_bits)

    def state_dict(self, model: Sequence[BinaryLayer]) -> dict[str, Any]:
        """``hidden``, ``classifier`` (tensors per layer) and ``reinforcement_numerator`` (ints), copies."""
        return {"hidden": [layer.hidden.clone() for layer in model],
                "classifier": [layer.classifier.clone() for layer in model],
                "reinforcement_numerator": [layer.reinforcement_numerator for layer in model]}

    def load_state_dict(self, model: Sequence[BinaryLayer], state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into ``model`` (re-packing the signs); ValueError when the
        saved layers do not fit the model's."""
        if len(state["hidden"]) != len(model):
            raise ValueError(f"checkpoint has {len(state['hidden'])} layers, the model {len(model)}")
        rows = zip(model, state["hidden"], state["classifier"], state["reinforcement_numerator"], strict=True)
        for layer, hidden, classifier, numerator in rows:
            layer.load_hidden(hidden)
            layer.classifier = classifier.clone().contiguous()
            layer.classifier_words = pack_sign_tensor(layer.classifier)
            layer.reinforcement_numerator = int(numerator)


def _float_signs(values: torch.Tensor) -> torch.Tensor:
    """±1 of an integer-valued float tensor with sign(0) = +1: sign(v + ½) (one fused-size pass
    cheaper than ``torch.where`` with scalars)."""
    return torch.sign(values + 0.5)


def local_binary_step_dense(hidden: list[torch.Tensor], classifiers: list[torch.Tensor],
                            x: torch.Tensor, labels: torch.Tensor, params: LocalBinaryParameters,
                            probabilities: list[float], limits: list[tuple[int, int]],
                            masks: list[torch.Tensor] | None = None,
                            generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], int, int]:
    """The same rule written with dense float torch tensors (the slow twin and oracle): the
    same selections, increments, saturation and, given the same ``masks``, the same hidden
    weights as :func:`local_binary_step`.

    Args:
        hidden: per layer (out, in) float32 hidden weights (integer-valued); not modified.
        classifiers: per layer (classes, out) float32 in {−1, +1}.
        x: (batch, n_in) float32 in {−1, +1}; labels: (batch,) int64.
        probabilities: p_r per layer; limits: (low, high) saturation per layer.
        masks: per layer (out, in) bool reinforcement masks (None: ``torch.rand < p``).
    Returns:
        (new hidden weights, mistakes, correct) — mistakes/correct of the last layer.
    """
    new_hidden = []
    inputs = x
    batch = torch.arange(len(labels))
    mistakes = correct = 0
    for index, (h, p) in enumerate(zip(hidden, classifiers, strict=True)):
        pre = inputs @ _float_signs(h).T
        s = _float_signs(pre)
        scores = s @ p.T
        own = scores[batch, labels]
        others = scores.clone()
        others[batch, labels] = -math.inf
        margin = int(params.robustness * h.shape[0])
        wrong = (scores.argmax(1) != labels) | (own - others.max(1).values < margin)
        desired = p[labels]  # (batch, out)
        in_error = (pre * desired < 0) & wrong[:, None]  # strict: a tie is no error
        if params.error_signal == "difference":
            in_error &= desired != p[others.argmax(1)]
        size = torch.where(in_error, pre.abs(), math.inf)
        units = h.shape[0]
        groups = -(-units // params.group_size)
        padded = torch.nn.functional.pad(size, (0, groups * params.group_size - units), value=math.inf)
        grouped = padded.reshape(len(labels), groups, params.group_size)
        best = grouped.argmin(2)  # first least |a| per group, as the integer kernel
        found = grouped.gather(2, best[..., None]).squeeze(2) < math.inf
        selected = torch.zeros(len(labels), groups * params.group_size)
        columns = best + torch.arange(groups) * params.group_size
        selected.scatter_(1, columns, found.float())
        selected = selected[:, :units] * desired
        low, high = limits[index]
        h = (h + 2 * selected.T @ inputs).clamp_(low, high)
        if masks is not None:
            mask = masks[index]
        else:
            mask = torch.rand(h.shape, generator=generator) < probabilities[index]
        h = h.addcmul_(_float_signs(h), mask.float(), value=2).clamp_(low, high)
        new_hidden.append(h)
        mistakes, correct = int(wrong.sum()), int((scores.argmax(1) == labels).sum())
        inputs = s
    return new_hidden, mistakes, correct
