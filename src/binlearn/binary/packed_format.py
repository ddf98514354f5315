"""The packed model format: 1-bit models as packed words, integer thresholds and a JSON
manifest, run with the XNOR-popcount kernels and integer comparisons only.

A packed model maps uint8 images to class labels in three stages (``docs/packed-format.md``
is the full specification)::

    input     bit_f = pixel[pixel_index[f]] > pixel_threshold[f]                (f < F)
    hidden    m_u = x · s_u  (XNOR + popcount, exact integer)
              bit_u = (m_u >= threshold[u]) XOR flip[u]
    output    score_c = m_c  or  rank_table[c, m_c + K];  label = first argmax_c score_c

where s_u ∈ {−1, +1}^K is the packed weight row u and x is the layer's input read as ±1
(``input_values = "signed"``: x_k = 2·bit_k − 1, so m = K − 2·popcount(x XOR s)) or as
{0, 1} (``"binary"``: x_k = bit_k, so m = (K − 2·popcount(x XOR s) + Σ_k s_k) / 2). A
layer with ``connectivity = "masked"`` sums only over the bits of its packed mask row
(m = |mask| − 2·popcount((x XOR s) AND mask) for ±1 inputs): the fixed committee votes.
Bits follow :mod:`binlearn.binary.packing` (bit 1 ↔ +1, padding bits 0, the manifest's
bit order) and :mod:`binlearn.binary.quantizers` (sign(0) = +1, Heaviside(0) = 0).

Format version 2 adds a second kind of model: instead of ``layers``, a ``dynamics``
section describes the free-phase relaxation of a binary Equilibrium-Propagation network
(integer popcount products, float32 accumulator updates; :mod:`binlearn.binary.packed_dynamics`).
Feed-forward models are still written as version 1, which both versions read.

On disk the model is an ``.npz`` (a zip archive): ``manifest.json`` (UTF-8 JSON) and one
``.npy`` member per array, named by the manifest. :meth:`PackedModel.load` refuses, with
one-line :class:`PackedFormatError` messages, a file that is truncated or not a zip, has no
or an unparsable manifest, another format or format version, a missing, extra or unreadable
array, an array whose shape or dtype differs from the manifest, or a manifest that is not
self-consistent (layer sizes, words = ceil(in_features / 64), padding bits, value ranges).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from binlearn.atomic import atomic_write
from binlearn.binary.kernels import binary_dense, popcount_int64
from binlearn.binary.packed_dynamics import (
    BinaryRelaxation,
    PackedDynamics,
    dynamics_manifest,
    validate_dynamics,
)
from binlearn.binary.packed_manifest import (
    PackedFormatError,
    check_choice,
    check_dict,
    check_int,
    fail,
    pack_nonnegative,
)
from binlearn.binary.packing import (
    BIT_ORDERS,
    WORD_BITS,
    from_numpy_words,
    pack_bits,
    to_numpy_words,
    words_for,
)
from binlearn.version import __version__

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "READ_VERSIONS",
    "MANIFEST_NAME",
    "VALUE_KINDS",
    "PackedFormatError",
    "PackedInput",
    "PackedLayer",
    "PackedModel",
    "pack_nonnegative",
    "step_thresholds",
    "rank_table",
]

FORMAT_NAME = "binlearn-packed"
FORMAT_VERSION = 2
"""The newest version: 1 (feed-forward ``layers``) plus the ``dynamics`` section."""
READ_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"
VALUE_KINDS = ("signed", "binary")
"""How a layer reads its input bits: ``signed`` bit b ↔ 2b − 1 ∈ {−1, +1}; ``binary`` bit b ↔ b ∈ {0, 1}."""
LAYER_KINDS = ("dense_threshold", "dense_argmax")
CONNECTIVITY = ("dense", "masked")
SCORES = ("popcount", "rank_table")


# ----------------------------------------------------------------------------- building blocks
@dataclass
class PackedInput:
    """The input stage: bit_f = pixel[pixel_index[f]] > pixel_threshold[f].

    shape: one raw image (channels, height, width), uint8 pixels; pixel_index: (F,) int64
    indices into the flattened image; pixel_threshold: (F,) int16 in [−1, 255] (−1: always
    on, 255: always off); values: how the first layer reads the bits (signed | binary);
    encoding: description of the data encoding the thresholds came from (informative).
    """

    shape: tuple[int, ...]
    pixel_index: np.ndarray
    pixel_threshold: np.ndarray
    values: str
    encoding: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> int:
        return int(self.pixel_index.shape[0])


@dataclass
class PackedLayer:
    """One binary layer: packed weights (out_features, words) uint64 plus either
    ``threshold`` (out,) int32 and ``flip`` (out,) uint8 (kind ``dense_threshold``) or an
    optional ``rank_table`` (out, 2·in + 1) int32 (kind ``dense_argmax``, the output); an
    optional packed ``mask`` (out, words) uint64 restricts each unit to the inputs whose
    mask bit is 1 (``connectivity = "masked"``)."""

    name: str
    kind: str
    in_features: int
    out_features: int
    input_values: str
    weights: np.ndarray
    output_values: str | None = None
    threshold: np.ndarray | None = None
    flip: np.ndarray | None = None
    rank_table: np.ndarray | None = None
    mask: np.ndarray | None = None

    @classmethod
    def hidden(cls, name: str, weights: np.ndarray, in_features: int, threshold: np.ndarray,
               flip: np.ndarray, input_values: str, output_values: str,
               mask: np.ndarray | None = None) -> PackedLayer:
        """bit_u = (m_u >= threshold[u]) XOR flip[u]; the bits are read as ``output_values``."""
        return cls(name, "dense_threshold", in_features, weights.shape[0], input_values, weights,
                   output_values, np.asarray(threshold, np.int32), np.asarray(flip, np.uint8), mask=mask)

    @classmethod
    def output(cls, name: str, weights: np.ndarray, in_features: int, input_values: str,
               rank_table: np.ndarray | None = None, mask: np.ndarray | None = None) -> PackedLayer:
        """score_c = m_c (no table) or rank_table[c, m_c + in_features]; label = first argmax."""
        table = None if rank_table is None else np.asarray(rank_table, np.int32)
        return cls(name, "dense_argmax", in_features, weights.shape[0], input_values, weights,
                   rank_table=table, mask=mask)


def step_thresholds(bits: np.ndarray, low: int) -> tuple[np.ndarray, np.ndarray]:
    """The integer form of a monotone activation: bit(m) = (m >= threshold) XOR flip.

    Args:
        bits: (candidates, units) bool, the activation bit of each unit at the integer
            pre-activation m = low + row (every reachable m, in increasing order).
        low: the smallest candidate m.
    Returns:
        threshold (units,) int32 in [low, low + candidates] and flip (units,) uint8: an
        increasing step 0…01…1 gives the first m that is on and flip 0; a decreasing step
        1…10…0 gives the first m that is off and flip 1; a constant unit gives
        threshold = low (always on) or low + candidates (never on) with flip 0.
    Raises:
        PackedFormatError: a unit's bits change more than once (not a step function).
    """
    bits = np.asarray(bits, dtype=bool)
    count = bits.shape[0]
    changes = (bits[1:] != bits[:-1]).sum(axis=0)
    if (changes > 1).any():
        unit = int(np.flatnonzero(changes > 1)[0])
        raise PackedFormatError(f"unit {unit}'s activation is not a step function of its integer "
                                "pre-activation, so it has no integer threshold")
    first_on = np.where(bits.any(axis=0), bits.argmax(axis=0), count)
    first_off = np.where((~bits).any(axis=0), (~bits).argmax(axis=0), count)
    decreasing = (changes == 1) & bits[0]
    threshold = np.where(decreasing, first_off, first_on) + low
    return threshold.astype(np.int32), decreasing.astype(np.uint8)


def rank_table(scores: np.ndarray) -> np.ndarray:
    """Dense ranks of all scores together: equal values share a rank, order is kept.

    Args:
        scores: (units, candidates) finite floats, the output score of each unit at each
            reachable integer pre-activation.
    Returns:
        (units, candidates) int32 with rank(a) < rank(b) ⇔ a < b, so the first argmax over
        units of the ranks is the first argmax of the scores.
    """
    scores = np.asarray(scores)
    if not np.isfinite(scores).all():
        raise PackedFormatError("the output layer's scores are not all finite; nothing to export")
    _, inverse = np.unique(scores, return_inverse=True)
    return inverse.reshape(scores.shape).astype(np.int32)


# ----------------------------------------------------------------------------- manifest checks
def _expected_arrays(layer: dict[str, Any], in_features: int, out_features: int
                     ) -> dict[str, tuple[str, tuple[int, ...]]]:
    """role -> (dtype, shape) that a layer of this kind and size must hold."""
    arrays: dict[str, tuple[str, tuple[int, ...]]] = {
        "weights": ("uint64", (out_features, words_for(in_features)))}
    if layer.get("connectivity") == "masked":
        arrays["mask"] = ("uint64", (out_features, words_for(in_features)))
    if layer["kind"] == "dense_threshold":
        arrays["threshold"] = ("int32", (out_features,))
        arrays["flip"] = ("uint8", (out_features,))
    elif layer.get("score") == "rank_table":
        arrays["rank_table"] = ("int32", (out_features, 2 * in_features + 1))
    return arrays


def _declared(entry: Any, role: str, where: str, source: str) -> tuple[str, str, tuple[int, ...]]:
    entry = check_dict(entry, f"{where}.arrays.{role}", source)
    name, dtype, shape = entry.get("name"), entry.get("dtype"), entry.get("shape")
    if not isinstance(name, str) or not name:
        raise fail(source, f"manifest {where}.arrays.{role}.name must be a non-empty string")
    if not isinstance(dtype, str):
        raise fail(source, f"manifest {where}.arrays.{role}.dtype must be a string, got {dtype!r}")
    if not isinstance(shape, list) or any(isinstance(s, bool) or not isinstance(s, int) for s in shape):
        raise fail(source, f"manifest {where}.arrays.{role}.shape must be a list of integers, got {shape!r}")
    return name, dtype, tuple(shape)


def _padding_mask(features: int, bit_order: str) -> np.uint64:
    """The unused bits of the last word (0 when features is a multiple of 64)."""
    used = features % WORD_BITS
    if used == 0:
        return np.uint64(0)
    low_bits = (1 << used) - 1
    valid = low_bits if bit_order == "little" else low_bits << (WORD_BITS - used)
    return np.uint64(~valid & (2**64 - 1))


# ----------------------------------------------------------------------------- the model
class PackedModel:
    """A validated packed model: ``manifest`` (JSON-able dict) and ``arrays`` (name -> numpy).

    Build one with :meth:`build` (from a :class:`PackedInput` and :class:`PackedLayer` list)
    or :meth:`load`; the constructor validates both (``PackedFormatError`` otherwise).
    """

    def __init__(self, manifest: dict[str, Any], arrays: dict[str, np.ndarray], source: str = "") -> None:
        self.manifest = manifest
        self.arrays = _validate(manifest, arrays, source)
        self.bit_order: str = manifest["bit_order"]
        self.num_classes: int = manifest["num_classes"]
        self.input_shape: tuple[int, ...] = tuple(manifest["input"]["shape"])
        names = manifest["input"]["arrays"]
        self._pixel_index = self.arrays[names["pixel_index"]["name"]]
        self._pixel_threshold = self.arrays[names["pixel_threshold"]["name"]]
        self._layers = [self._prepare(layer) for layer in manifest.get("layers", [])]
        self.relaxation: BinaryRelaxation | None = None
        """The engine of a ``dynamics`` model (None for feed-forward layers)."""
        if "dynamics" in manifest:
            self.relaxation = BinaryRelaxation(manifest["dynamics"], self.arrays, self.bit_order)

    def _prepare(self, layer: dict[str, Any]) -> dict[str, Any]:
        arrays = {role: self.arrays[entry["name"]] for role, entry in layer["arrays"].items()}
        prepared = {**layer, **arrays, "weights_torch": from_numpy_words(arrays["weights"])}
        weights, width = prepared["weights_torch"], layer["in_features"]
        if "mask" in arrays:
            prepared["mask_torch"] = from_numpy_words(arrays["mask"])
            weights = weights & prepared["mask_torch"]
            width = popcount_int64(prepared["mask_torch"]).sum(dim=1).numpy()  # |mask_u|
        if layer["input_values"] == "binary":
            # Σ_k s_k per row (over the mask): the correction from ±1 to {0, 1} inputs.
            ones = popcount_int64(weights).sum(dim=1).numpy()
            prepared["row_sums"] = 2 * ones - width
        if layer["kind"] == "dense_threshold":
            prepared["flip_words"] = to_numpy_words(pack_bits(torch.from_numpy(arrays["flip"] != 0),
                                                              self.bit_order))
        return prepared

    # -- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, packed_input: PackedInput, layers: list[PackedLayer] | PackedDynamics, num_classes: int,
              metadata: dict[str, Any] | None = None, bit_order: str = "little") -> PackedModel:
        """Assemble manifest and arrays (``metadata``: free-form ``model``/``source`` sections).

        ``layers``: feed-forward layers (written as format version 1) or the dynamics of a
        binary EP network (format version 2).
        """
        arrays: dict[str, np.ndarray] = {
            "input.pixel_index": np.asarray(packed_input.pixel_index, np.int64),
            "input.pixel_threshold": np.asarray(packed_input.pixel_threshold, np.int16),
        }

        def declare(name: str, array: np.ndarray) -> dict[str, Any]:
            arrays[name] = array
            return {"name": name, "dtype": array.dtype.name, "shape": list(array.shape)}

        dynamics = layers if isinstance(layers, PackedDynamics) else None
        manifest: dict[str, Any] = {
            "format": FORMAT_NAME, "format_version": 1 if dynamics is None else FORMAT_VERSION,
            "binlearn_version": __version__,
            "word_bits": WORD_BITS, "bit_order": bit_order, "num_classes": int(num_classes),
            "input": {
                "shape": [int(s) for s in packed_input.shape], "pixel_dtype": "uint8",
                "features": packed_input.features, "values": packed_input.values,
                "encoding": packed_input.encoding,
                "arrays": {"pixel_index": declare("input.pixel_index", arrays["input.pixel_index"]),
                           "pixel_threshold": declare("input.pixel_threshold",
                                                      arrays["input.pixel_threshold"])},
            },
        }
        if isinstance(layers, PackedDynamics):
            manifest["dynamics"] = dynamics_manifest(layers, declare)
            manifest.update(metadata or {})
            return cls(manifest, arrays)
        manifest["layers"] = []
        for index, layer in enumerate(layers):
            prefix = f"layers.{index}"
            entry: dict[str, Any] = {
                "name": layer.name, "kind": layer.kind, "in_features": int(layer.in_features),
                "out_features": int(layer.out_features), "input_values": layer.input_values,
            }
            roles: dict[str, Any] = {"weights": np.ascontiguousarray(layer.weights, dtype=np.uint64)}
            entry["connectivity"] = "dense" if layer.mask is None else "masked"
            if layer.mask is not None:
                roles["mask"] = np.ascontiguousarray(layer.mask, dtype=np.uint64)
            if layer.kind == "dense_threshold":
                entry["output_values"] = layer.output_values
                roles["threshold"], roles["flip"] = layer.threshold, layer.flip
            else:
                entry["score"] = "popcount" if layer.rank_table is None else "rank_table"
                if layer.rank_table is not None:
                    roles["rank_table"] = layer.rank_table
            entry["arrays"] = {role: declare(f"{prefix}.{role}", array) for role, array in roles.items()}
            manifest["layers"].append(entry)
        manifest.update(metadata or {})
        return cls(manifest, arrays)

    # -- files --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` atomically (a temporary file in the same folder, then ``os.replace``)."""
        def write(handle) -> None:
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(MANIFEST_NAME, json.dumps(self.manifest, indent=1, sort_keys=False))
                for name, array in self.arrays.items():
                    buffer = io.BytesIO()
                    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                    archive.writestr(f"{name}.npy", buffer.getvalue())

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PackedModel:
        """Read and validate a packed model file (every problem is a one-line PackedFormatError)."""
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise fail(source, "no such packed model file" if not path.exists() else "not a file")
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                if MANIFEST_NAME not in names:
                    raise fail(source, f"no {MANIFEST_NAME} in the archive: not a binlearn packed model")
                manifest_bytes = archive.read(MANIFEST_NAME)
                members = {name[:-4]: archive.read(name) for name in names if name.endswith(".npy")}
                others = sorted(set(names) - {MANIFEST_NAME} - {f"{n}.npy" for n in members})
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as error:
            raise fail(source, f"truncated or corrupt packed model file (not a readable .npz archive: "
                                f"{error})") from None
        if others:
            raise fail(source, f"unexpected member {others[0]!r} in the archive")
        try:
            manifest = json.loads(manifest_bytes.decode("utf-8"))
        except ValueError as error:  # not UTF-8, not JSON, or an integer of more than 4300 digits
            raise fail(source, f"{MANIFEST_NAME} is not valid JSON ({error})") from None
        except RecursionError:
            raise fail(source, f"{MANIFEST_NAME} nests arrays or objects too deeply to be a "
                               "manifest") from None
        _check_format(manifest, source)
        arrays = {}
        for name, data in members.items():
            try:
                arrays[name] = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
            except (ValueError, OSError, EOFError) as error:
                raise fail(source, f"array {name!r} is unreadable ({str(error).splitlines()[0]})") from None
        return cls(manifest, arrays, source)

    # -- inference ----------------------------------------------------------------------
    def encode(self, images: np.ndarray) -> np.ndarray:
        """Input bits packed: (batch, ceil(F / 64)) uint64 from uint8 images (batch, *shape)."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(f"a packed model reads uint8 pixels, got {images.dtype}")
        if tuple(images.shape[1:]) not in (self.input_shape, (int(np.prod(self.input_shape)),)):
            raise ValueError(f"images of shape {tuple(images.shape[1:])} do not fit the model's input "
                             f"{self.input_shape}")
        flat = images.reshape(images.shape[0], -1)
        # pixel > threshold  ⇔  pixel − threshold − 1 >= 0
        return self._pack_nonnegative(flat[:, self._pixel_index] - self._pixel_threshold - np.int16(1))

    def _pack_nonnegative(self, values: np.ndarray) -> np.ndarray:
        return pack_nonnegative(values, self.bit_order)

    def _pre_activations(self, words: np.ndarray, layer: dict[str, Any]) -> np.ndarray:
        if "mask_torch" in layer:
            pre = _masked_dense(from_numpy_words(words), layer["weights_torch"], layer["mask_torch"])
        else:
            dots = binary_dense(from_numpy_words(words), layer["weights_torch"], layer["in_features"])
            pre = dots.numpy().astype(np.int64)
        if layer["input_values"] == "binary":
            pre = (pre + layer["row_sums"]) >> 1  # exact: both terms have the parity of K
        return pre

    def forward(self, words: np.ndarray) -> list[np.ndarray]:
        """Every layer's output from packed input bits (see :meth:`encode`): for each hidden
        layer its packed activation bits (batch, words(out)) uint64, then the output scores
        (batch, classes) int64. A ``dynamics`` model: every layer's packed activation bits
        after the relaxation (the output layer's too), then the scores (batch, classes)
        float32."""
        if self.relaxation is not None:
            return self.relaxation.forward(words)
        outputs = []
        words = np.ascontiguousarray(words, dtype=np.uint64)
        for layer in self._layers:
            pre = self._pre_activations(words, layer)
            if layer["kind"] == "dense_threshold":
                # bit = (m >= threshold) XOR flip: pack the comparison, then XOR the packed flips.
                words = self._pack_nonnegative(pre - layer["threshold"]) ^ layer["flip_words"]
                outputs.append(words)
            elif layer["score"] == "rank_table":
                columns = np.arange(layer["out_features"])
                outputs.append(layer["rank_table"][columns, pre + layer["in_features"]].astype(np.int64))
            else:
                outputs.append(pre)
        return outputs

    def scores(self, words: np.ndarray) -> np.ndarray:
        """Output scores (batch, classes) from packed input bits (see :meth:`encode`): int64,
        or float32 for a ``dynamics`` model."""
        return self.forward(words)[-1]

    def predict_words(self, words: np.ndarray) -> np.ndarray:
        """Labels (batch,) int64 from packed input bits: the first argmax of :meth:`scores`."""
        return self.scores(words).argmax(axis=1).astype(np.int64)

    def predict(self, images: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Labels (batch,) int64 from uint8 images (batch, *input_shape)."""
        images = np.asarray(images)
        out = np.empty(images.shape[0], dtype=np.int64)
        for start in range(0, images.shape[0], batch_size):
            out[start:start + batch_size] = self.predict_words(self.encode(images[start:start + batch_size]))
        return out

    def summary(self) -> list[dict[str, Any]]:
        """Per layer (coupling, for ``dynamics``): kind, sizes and packed bytes (weights +
        side arrays)."""
        dynamics = self.manifest.get("dynamics")
        rows = []
        for layer in self.manifest["layers"] if dynamics is None else dynamics["couplings"]:
            size = sum(self.arrays[e["name"]].nbytes for e in layer["arrays"].values())
            rows.append({"layer": layer["name"], "kind": layer.get("kind", "ep_coupling"),
                         "in": layer["in_features"], "out": layer["out_features"], "bytes": int(size)})
        return rows


def _masked_dense(x_words: torch.Tensor, w_words: torch.Tensor, masks: torch.Tensor,
                  max_chunk_bytes: int = 32 << 20) -> np.ndarray:
    """out[b, u] = Σ_{k ∈ mask_u} x[b, k]·s[u, k] = |mask_u| − 2·popcount((x XOR s_u) AND mask_u).

    x_words: (batch, words), w_words and masks: (out, words), int64 words. Returns int64.
    """
    sizes = popcount_int64(masks).sum(dim=1)
    out = torch.empty((x_words.shape[0], w_words.shape[0]), dtype=torch.int64)
    chunk = max(1, max_chunk_bytes // max(1, 8 * w_words.numel()))
    for start in range(0, x_words.shape[0], chunk):
        differ = (x_words[start:start + chunk, None, :] ^ w_words[None]) & masks[None]
        out[start:start + chunk] = sizes - 2 * popcount_int64(differ).sum(dim=-1)
    return out.numpy()


def _check_format(manifest: Any, source: str) -> None:
    manifest = check_dict(manifest, "root", source)
    if manifest.get("format") != FORMAT_NAME:
        raise fail(source, f"not a binlearn packed model (manifest format {manifest.get('format')!r}, "
                            f"expected {FORMAT_NAME!r})")
    version = manifest.get("format_version")
    if isinstance(version, bool) or version not in READ_VERSIONS:
        raise fail(source, f"packed format version {version!r} (written by binlearn "
                            f"{manifest.get('binlearn_version', 'unknown')}); binlearn {__version__} reads "
                            f"versions {', '.join(map(str, READ_VERSIONS))}: re-export the run with this "
                            "version")


def _check_arrays(entries: Any, expected: dict[str, tuple[str, tuple[int, ...]]], where: str,
                  arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Manifest declarations == what the layer needs == what the file holds; returns role -> array."""
    entries = check_dict(entries, f"{where}.arrays", source)
    if set(entries) != set(expected):
        raise fail(source, f"manifest {where}.arrays has {sorted(entries)}, expected {sorted(expected)}")
    found = {}
    for role, (dtype, shape) in expected.items():
        name, declared_dtype, declared_shape = _declared(entries[role], role, where, source)
        if declared_dtype != dtype or declared_shape != shape:
            raise fail(source, f"manifest declares {name} as {declared_dtype} {list(declared_shape)}, but "
                                f"{where} needs {dtype} {list(shape)}")
        if name not in arrays:
            raise fail(source, f"array {name!r} ({where} {role}) is missing from the file")
        array = arrays[name]
        if array.dtype.name != dtype or array.shape != shape:
            raise fail(source, f"array {name!r} is {array.dtype.name} {list(array.shape)}, the manifest "
                                f"declares {dtype} {list(shape)}")
        found[role] = array
    return found


def _validate(manifest: dict[str, Any], arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    _check_format(manifest, source)
    if manifest.get("word_bits") != WORD_BITS:
        raise fail(source, f"manifest word_bits = {manifest.get('word_bits')!r}; only {WORD_BITS} is "
                            "supported")
    bit_order = check_choice(manifest.get("bit_order"), BIT_ORDERS, "bit_order", source)
    classes = check_int(manifest.get("num_classes"), "num_classes", source, 1)
    used: set[str] = set()
    native: dict[str, np.ndarray] = {}

    def take(found: dict[str, np.ndarray], entries: dict[str, Any]) -> dict[str, np.ndarray]:
        for role, array in found.items():
            name = entries[role]["name"]
            used.add(name)
            native[name] = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
        return {role: native[entries[role]["name"]] for role in found}

    # input stage
    spec = check_dict(manifest.get("input"), "input", source)
    shape = spec.get("shape")
    if not isinstance(shape, list) or not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                                                       for s in shape):
        raise fail(source, f"manifest input.shape must be a list of positive integers, got {shape!r}")
    features = check_int(spec.get("features"), "input.features", source, 1)
    values = check_choice(spec.get("values"), VALUE_KINDS, "input.values", source)
    found = take(_check_arrays(spec.get("arrays"), {"pixel_index": ("int64", (features,)),
                                                    "pixel_threshold": ("int16", (features,))},
                               "input", arrays, source), spec["arrays"])
    pixels = int(np.prod(shape))
    pixel_index = found["pixel_index"]
    if pixel_index.size and not (0 <= pixel_index.min() and pixel_index.max() < pixels):
        raise fail(source, f"input pixel_index values must be in [0, {pixels})")
    if found["pixel_threshold"].size and not (-1 <= found["pixel_threshold"].min()
                                              and found["pixel_threshold"].max() <= 255):
        raise fail(source, "input pixel_threshold values must be in [-1, 255]")

    if "dynamics" in manifest:
        if "layers" in manifest:
            raise fail(source, "manifest has both layers and dynamics; a model is one or the other")
        if manifest["format_version"] < 2:
            raise fail(source, "manifest dynamics needs format_version 2, the file says "
                                f"{manifest['format_version']}")
        validate_dynamics(manifest["dynamics"], features, values, classes,
                          lambda in_features: _padding_mask(in_features, bit_order),
                          lambda entries, expected, where: take(
                              _check_arrays(entries, expected, where, arrays, source), entries),
                          source)
        return _unused(arrays, used, native, source)

    # layers
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        raise fail(source, "manifest layers must be a non-empty list")
    width, reads = features, values
    for index, layer in enumerate(layers):
        where = f"layers[{index}]"
        layer = check_dict(layer, where, source)
        kind = check_choice(layer.get("kind"), LAYER_KINDS, f"{where}.kind", source)
        last = index == len(layers) - 1
        if last != (kind == "dense_argmax"):
            raise fail(source, f"manifest {where} is {kind!r}: a model is dense_threshold layers ending "
                                "in one dense_argmax layer")
        in_features = check_int(layer.get("in_features"), f"{where}.in_features", source, 1)
        out_features = check_int(layer.get("out_features"), f"{where}.out_features", source, 1)
        if in_features != width:
            raise fail(source, f"manifest {where}.in_features = {in_features}, but its input has {width} "
                                "features")
        if layer.get("input_values") != reads:
            raise fail(source, f"manifest {where}.input_values = {layer.get('input_values')!r}, but its "
                                f"input bits are {reads!r}")
        if kind == "dense_threshold":
            reads = check_choice(layer.get("output_values"), VALUE_KINDS, f"{where}.output_values", source)
        else:
            check_choice(layer.get("score"), SCORES, f"{where}.score", source)
            if out_features != classes:
                raise fail(source, f"manifest {where}.out_features = {out_features}, but num_classes = "
                                    f"{classes}")
        check_choice(layer.get("connectivity"), CONNECTIVITY, f"{where}.connectivity", source)
        found = take(_check_arrays(layer.get("arrays"), _expected_arrays(layer, in_features, out_features),
                                   where, arrays, source), layer["arrays"])
        pad = _padding_mask(in_features, bit_order)
        for role in ("weights", "mask"):
            if role in found and pad and (found[role][:, -1] & pad).any():
                raise fail(source, f"{where} {role} have padding bits set (bits past in_features must be 0)")
        if "flip" in found and (found["flip"] > 1).any():
            raise fail(source, f"{where} flip values must be 0 or 1")
        if "rank_table" in found and found["rank_table"].size and found["rank_table"].min() < 0:
            raise fail(source, f"{where} rank_table values must be >= 0")
        width = out_features
    return _unused(arrays, used, native, source)


def _unused(arrays: dict[str, np.ndarray], used: set[str], native: dict[str, np.ndarray],
            source: str) -> dict[str, np.ndarray]:
    """``native`` when every array in the file was declared; refuses an undeclared one."""
    extra = sorted(set(arrays) - used)
    if extra:
        raise fail(source, f"array {extra[0]!r} is not declared in the manifest")
    return native
