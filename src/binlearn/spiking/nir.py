"""Export of converted spiking networks to NIR (the Neuromorphic Intermediate Representation).

Each :class:`~binlearn.spiking.network.SpikingLayer` (I = synapse(x) + b; IF neurons or the
output integrator) becomes a chain of NIR nodes, in order::

    Input(shape)                              one sample, no batch axis (NIR has none)
    Flatten(start_dim=0)                      binlearn's nn.Flatten(1) without the batch axis
    Affine(W, b) | Linear(W)                  Linear synapse; b = the layer's constant current
    Conv2d(W, b, stride, padding, …)          the same for a convolution
    SumPool2d(k, s, p)                        binlearn's AvgPool2d ("sum", default), or AvgPool2d ("avg")
    IF(r = 1, v_threshold = θ', v_reset = 0)  one threshold per unit, shape of the layer's units
    I(r = 1)                                  the output layer's integrator (or nothing, see below)
    Output(shape)

What binlearn computes, step by step, is v ← v + I; s = [v > θ]; v ← 0 where s (reset to
zero) — NIR's IF, dv/dt = R·I with R = 1, firing on v > v_threshold and resetting to
v_reset = 0, integrated with one unit time step per binlearn step. A sum pool of window k×k
is k² times binlearn's average pool, so with ``pooling="sum"`` the bias of a pooled layer is
pooled with its convolution (Conv2d's bias) and its thresholds are θ' = k²·θ: v' = k²·v at
every step, the same spikes (with k = 2 the factor 4 is exact in float32). ``"avg"`` writes
AvgPool2d and θ' = θ, for readers that have it.

Which of binlearn's simulation modes a NIR reader reproduces exactly (and which not):

- reset: ``"zero"`` exactly. NIR has no reset by subtraction; a ``"subtract"`` network is
  refused unless ``subtract_as_zero=True``, which writes v_reset = 0 anyway (what other
  tools do) and records ``binlearn_reset = "subtract"`` in each IF node's metadata: a
  reader then computes a different network (more steps to the same rates).
- layer delay: ``delay=False`` ("one-step": every layer in the same time step) — a NIR
  graph's edges carry no delay, a reader propagates an input through all nodes in a step.
- membrane init: ``init="zero"`` — NIR stores no initial state (θ/2 is not expressible).
- encoding: direct — the reader feeds the image as the input at every step; Poisson coding
  is the reader's business (seeded streams are not part of a graph).
- output: the integrator v_L(t) = Σ_{τ ≤ t} I_L(τ) is NIR's I(r = 1); the prediction is
  argmax v_L. With ``output_integrator=False`` the output layer ends at its synapse and the
  reader sums its outputs over the steps (for readers without I, e.g. snnTorch).

Reference: Pedersen et al., "Neuromorphic intermediate representation: a unified
instruction set for interoperable brain-inspired computing", Nature Communications 2024.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from binlearn.errors import BinlearnError
from binlearn.spiking.network import SpikingLayer, SpikingNetwork, weighted_op
from binlearn.spiking.neurons import IF

__all__ = ["POOLINGS", "NIRExportError", "to_nir", "write_nir", "read_nir", "describe", "graph_differences",
           "reference_reader", "reference_predictions"]

POOLINGS = ("sum", "avg")


class NIRExportError(BinlearnError, ValueError):
    """The network cannot be written as NIR as asked (the message says why and what to do)."""


def _nir():
    try:
        import nir
    except ImportError:  # an optional extra
        raise NIRExportError("NIR export needs the nir package: pip install 'binlearn[nir]'") from None
    return nir


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to(device="cpu", dtype=torch.float32).numpy().copy()


def _pair(value) -> np.ndarray:
    values = (value, value) if isinstance(value, int) else tuple(value)
    return np.array(values, dtype=np.int64)


def _tensor(value: object) -> torch.Tensor:
    """A module's buffer as a tensor (nn.Module attributes are typed Tensor | Module)."""
    assert isinstance(value, torch.Tensor)
    return value


def _layer_nodes(layer: SpikingLayer, input_shape: tuple[int, ...], pooling: str,
                 output_integrator: bool, subtract_as_zero: bool, last: bool) -> list[tuple[str, Any]]:
    """The NIR nodes of one layer, named ``{layer.name}.{op}``, in order."""
    nir = _nir()
    nodes: list[tuple[str, Any]] = []
    bias = None if layer.bias is None else _tensor(layer.bias).reshape(-1)
    weighted = weighted_op(layer.synapse)
    after = list(layer.synapse)[list(layer.synapse).index(weighted) + 1:]
    if bias is not None and any(not isinstance(op, nn.AvgPool2d) for op in after):
        raise NIRExportError(f"layer {layer.name}: its constant current is added after "
                             f"{type(after[0]).__name__}, which NIR's Affine/Conv2d bias cannot express")
    scale = 1.0  # v' = scale · v: the sum pools' k² factors
    shape = tuple(input_shape)
    for index, op in enumerate(layer.synapse):
        key = f"{layer.name}.{index}"
        if isinstance(op, nn.Flatten):
            start = op.start_dim - 1 if op.start_dim > 0 else op.start_dim
            end = op.end_dim - 1 if op.end_dim > 0 else op.end_dim
            if start < 0 and op.start_dim >= 0:
                raise NIRExportError(f"layer {layer.name}: a Flatten over the batch axis has no NIR form")
            nodes.append((f"{key}.flatten", nir.Flatten(input_type={"input": np.array(shape)},
                                                       start_dim=start, end_dim=end)))
        elif isinstance(op, nn.Linear):
            weight = _array(op.weight)
            if bias is None:
                nodes.append((f"{key}.linear", nir.Linear(weight=weight)))
            else:
                nodes.append((f"{key}.affine", nir.Affine(weight=weight, bias=_array(bias))))
        elif isinstance(op, nn.Conv2d):
            conv_bias = _array(bias) if bias is not None else np.zeros(op.out_channels, dtype=np.float32)
            if isinstance(op.padding, str):
                raise NIRExportError(f"layer {layer.name}: padding {op.padding!r} is not exported")
            nodes.append((f"{key}.conv", nir.Conv2d(
                input_shape=(int(shape[1]), int(shape[2])), weight=_array(op.weight),
                stride=_pair(op.stride), padding=_pair(op.padding), dilation=_pair(op.dilation),
                groups=int(op.groups), bias=conv_bias)))
        elif isinstance(op, nn.AvgPool2d):
            kernel, padding = _pair(op.kernel_size), _pair(op.padding)
            stride = _pair(op.stride or op.kernel_size)
            if padding.any() and pooling == "sum":
                raise NIRExportError(f"layer {layer.name}: a padded average pool is not a scaled sum pool "
                                     "at the borders; export with pooling=\"avg\"")
            if pooling == "sum":
                node = nir.SumPool2d(kernel_size=kernel, stride=stride, padding=padding)
                nodes.append((f"{key}.sumpool", node))
                scale *= float(np.prod(kernel))
            else:
                node = nir.AvgPool2d(kernel_size=kernel, stride=stride, padding=padding)
                nodes.append((f"{key}.avgpool", node))
        else:  # pragma: no cover - SpikingLayer admits no other op
            raise NIRExportError(f"layer {layer.name}: {type(op).__name__} has no NIR export")
        with torch.no_grad():
            shape = tuple(op(torch.zeros((1, *shape))).shape[1:])
    if isinstance(layer.neuron, IF):
        if layer.neuron.reset == "subtract" and not subtract_as_zero:
            raise NIRExportError(f"layer {layer.name} resets by subtraction, which NIR's IF cannot express "
                                 "(it resets to v_reset); convert with reset \"zero\", or export with "
                                 "subtract_as_zero (a different network: NIR readers then reset to 0)")
        threshold = torch.broadcast_to(_tensor(layer.neuron.threshold).float().cpu(), shape) * scale
        metadata = {"binlearn_reset": layer.neuron.reset}
        nodes.append((f"{layer.name}.if", nir.IF(r=np.ones(shape, dtype=np.float32),
                                                 v_threshold=_array(threshold),
                                                 v_reset=np.zeros(shape, dtype=np.float32),
                                                 metadata=metadata)))
    elif output_integrator:  # v ← v + I; r = 1/k² undoes a sum pool's factor
        nodes.append((f"{layer.name}.integrator", nir.I(r=np.full(shape, 1.0 / scale, dtype=np.float32))))
    if not last and not isinstance(layer.neuron, IF):  # pragma: no cover - SpikingNetwork checks it
        raise NIRExportError(f"layer {layer.name}: only the last layer may integrate without spiking")
    return nodes


def to_nir(network: SpikingNetwork, *, pooling: str = "sum", output_integrator: bool = True,
           subtract_as_zero: bool = False):
    """The NIR graph of ``network`` (see the module docstring for what a reader reproduces).

    Args:
        network: a converted network (:func:`binlearn.spiking.convert`), any device.
        pooling: ``"sum"`` (SumPool2d, k² folded into the thresholds) | ``"avg"`` (AvgPool2d).
        output_integrator: end with NIR's integrator I(r = 1) (True) or with the output synapse.
        subtract_as_zero: write reset-by-subtraction layers as v_reset = 0 instead of refusing.
    Returns:
        ``nir.NIRGraph`` with nodes ``input``, ``{layer}.{index}.{op}``, ``{layer}.if``,
        ``{layer}.integrator``, ``output``, chained in order.
    """
    nir = _nir()
    if pooling not in POOLINGS:
        raise NIRExportError(f"pooling={pooling!r}; valid: {', '.join(POOLINGS)}")
    shapes = network.shapes()
    nodes: list[tuple[str, Any]] = [("input", nir.Input(input_type={"input": np.array(network.input_shape)}))]
    layers = [layer for layer in network.layers if isinstance(layer, SpikingLayer)]
    for index, layer in enumerate(layers):
        nodes += _layer_nodes(layer, shapes[index], pooling, output_integrator, subtract_as_zero,
                              last=index == len(layers) - 1)
    nodes.append(("output", nir.Output(output_type={"output": np.array(shapes[-1])})))
    names = [name for name, _ in nodes]
    if len(set(names)) != len(names):
        raise NIRExportError(f"layer names repeat ({', '.join(layer.name for layer in layers)}); "
                             "NIR node names must be unique")
    edges = list(zip(names[:-1], names[1:], strict=True))
    return nir.NIRGraph(nodes=dict(nodes), edges=edges,
                        metadata={"producer": "binlearn", "spike_condition": "v > v_threshold",
                                  "time_step": "one binlearn step = one unit of time (dt = 1)"})


def write_nir(graph, path: str | Path) -> Path:
    """``nir.write`` to ``path`` atomically (a temporary file beside it, then renamed)."""
    import io

    from binlearn.atomic import atomic_write_bytes

    nir = _nir()
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_nir(path: str | Path):
    """``nir.read(path)``; a file that is not a NIR graph is one NIRExportError line."""
    nir = _nir()
    try:
        return nir.read(str(path))
    except (OSError, KeyError, ValueError) as error:
        raise NIRExportError(f"{path}: not a readable NIR file ({type(error).__name__})") from None


def describe(graph) -> list[dict[str, Any]]:
    """One row per node: name, NIR type, and the shapes of its arrays (for summaries and tests)."""
    rows = []
    for name, node in graph.nodes.items():
        arrays = {key: list(np.shape(value)) for key, value in vars(node).items()
                  if isinstance(value, np.ndarray) and key not in ("input_type", "output_type")}
        rows.append({"name": name, "type": type(node).__name__, "arrays": arrays})
    return rows


def graph_differences(a, b) -> list[str]:
    """What differs between two NIR graphs: node names, edges, node types, array values (exact);
    empty when they are the same graph (node order aside: HDF5 returns groups by name)."""
    differences = []
    if sorted(a.nodes) != sorted(b.nodes):
        differences.append(f"nodes {sorted(a.nodes)} != {sorted(b.nodes)}")
    if sorted(a.edges) != sorted(b.edges):
        differences.append("edges differ")
    for name in sorted(set(a.nodes) & set(b.nodes)):
        node, other = a.nodes[name], b.nodes[name]
        if type(node) is not type(other):
            differences.append(f"{name}: {type(node).__name__} != {type(other).__name__}")
            continue
        for key, value in vars(node).items():
            if isinstance(value, np.ndarray) and not np.array_equal(value, getattr(other, key, np.array([]))):
                differences.append(f"{name}.{key} differs")
    return differences


def reference_reader(graph) -> nn.Module:
    """An independent reader of exported graphs: nirtorch's graph interpreter with snnTorch's
    neurons, each node mapped by NIR's own definition of it (used by the tests and
    ``benchmarks/nir_agreement.py`` to check that a reader runs an export as binlearn does)::

        IF(r = 1, θ, v_reset = 0) -> snn.Leaky(β = 1, threshold θ per unit, reset to zero, same step)
        Affine(W, b)               -> nn.Linear with W, b
        Flatten(start, end)        -> nn.Flatten over a batch (dims + 1; NIR shapes have no batch axis)

    snnTorch's own ``import_from_nir`` cannot read these graphs (it refuses per-unit
    thresholds), hence the mapping. Needs ``nirtorch`` and ``snntorch`` (the test extra).
    """
    nir = _nir()
    try:
        import nirtorch
        import snntorch as snn
    except ImportError:
        raise NIRExportError("the reference reader needs nirtorch and snntorch: "
                             "pip install -e '.[test]'") from None

    def leaky(node):
        if not (np.all(node.r == 1) and np.all(node.v_reset == 0)):
            raise NIRExportError("the reference reader reads IF(r = 1, v_reset = 0) only")
        return snn.Leaky(beta=1.0, threshold=torch.from_numpy(np.asarray(node.v_threshold, dtype=np.float32)),
                         reset_mechanism="zero", reset_delay=False, init_hidden=True)

    def affine(node):
        module = nn.Linear(node.weight.shape[1], node.weight.shape[0])
        module.weight.data, module.bias.data = torch.from_numpy(node.weight), torch.from_numpy(node.bias)
        return module

    def flatten(node):
        return nn.Flatten(node.start_dim + 1, node.end_dim if node.end_dim < 0 else node.end_dim + 1)

    return nirtorch.nir_to_torch(graph, {nir.IF: leaky, nir.Affine: affine, nir.Flatten: flatten})


@torch.no_grad()
def reference_predictions(graph, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Class per image after each of ``steps`` steps, ``(steps, batch)``, as
    :func:`reference_reader` runs ``graph`` with the image as the input of every step (direct
    encoding) and the output accumulated (binlearn's output integrator)."""
    reader = reference_reader(graph)
    total: torch.Tensor | None = None
    predictions = []
    for _ in range(steps):
        output, _ = reader(x)
        total = output.clone() if total is None else total + output
        predictions.append(total.argmax(dim=1))
    return torch.stack(predictions)
