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

Local-binary-rule networks (:func:`binlearn.spiking.local.convert_sign_mlp`: ±1 synapses, one
integer threshold per unit, the output an Integrator with the constant current −S/2) are
written the same way by :func:`sign_mlp_to_nir`, with one more node: ``Threshold(0)`` after
``Input`` (NIR's z = [x > θ], memoryless), which turns the data into the network's input
spikes [x > 0] (:func:`binlearn.spiking.local.input_spikes`), so a reader feeds the data as
given. Every current is then an integer or half-integer sum, exact in float32.

Binary EP networks read as spiking networks (:mod:`binlearn.spiking.ep`) have no exact NIR
form, and :func:`ep_to_nir` refuses them in one line: each neuron's state is an accumulator
clipped to [0, 1] at every step, which no NIR node expresses; with γ = 1 the neuron is
memoryless, but the relaxation's one-step exchanges between layers would be Delay nodes in a
cycle, whose initial output (the initial state's spikes) NIR does not define (docs/nir.md).

Reference: Pedersen et al., "Neuromorphic intermediate representation: a unified
instruction set for interoperable brain-inspired computing", Nature Communications 2024.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import torch
from torch import nn

from binlearn.errors import BinlearnError
from binlearn.spiking.network import SpikingLayer, SpikingNetwork, weighted_op
from binlearn.spiking.neurons import IF

if TYPE_CHECKING:
    from binlearn.energy.network import EnergyNet

__all__ = ["POOLINGS", "NIRExportError", "to_nir", "sign_mlp_to_nir", "ep_to_nir", "write_nir", "read_nir",
           "describe", "graph_differences", "reference_reader", "reference_outputs", "reference_predictions"]

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


INPUT_THRESHOLD = "input.threshold"
"""The node of a :func:`sign_mlp_to_nir` graph that turns the data into input spikes."""


def _check_sign_mlp(network: SpikingNetwork) -> None:
    """Refuse, in one line, a network that is not a ±1 sign MLP with integer thresholds."""
    for layer in network:
        ops = list(layer.synapse)
        if not layer.binary or any(not isinstance(op, nn.Flatten | nn.Linear) for op in ops):
            raise NIRExportError(f"layer {layer.name} is not a ±1 fully connected layer: "
                                 "sign_mlp_to_nir takes networks of binlearn.spiking.local.convert_sign_mlp; "
                                 "export other converted networks with to_nir")
        if isinstance(layer.neuron, IF):
            threshold = _tensor(layer.neuron.threshold)
            if not torch.equal(threshold, torch.round(threshold)):
                raise NIRExportError(f"layer {layer.name}: its thresholds are not integers, as a sign "
                                     "MLP's θ = ⌈S/2⌉ − 1 are")


def sign_mlp_to_nir(network: SpikingNetwork, *, binarize_input: bool = True, output_integrator: bool = True):
    """The NIR graph of a local-binary-rule network converted to spikes (module docstring).

    Args:
        network: :func:`binlearn.spiking.local.convert_sign_mlp`'s network, converted with
            ``reset="zero"`` (NIR's IF resets to v_reset; a subtract network is refused).
        binarize_input: start with ``Threshold(0)``, so the graph reads the data as the run
            does (spikes [x > 0]); False: the graph's input is the spikes themselves.
        output_integrator: end with NIR's integrator I(r = 1) (True) or with the output synapse
            (the reader sums its outputs over the steps).
    Returns:
        ``nir.NIRGraph``: ``input``, ``input.threshold``, then the nodes :func:`to_nir` writes.
        It reproduces ``simulate(network, input_spikes(x), T, delay=False)`` at every step.
    """
    nir = _nir()
    _check_sign_mlp(network)
    graph = to_nir(network, output_integrator=output_integrator)
    graph.metadata["binlearn_source"] = "local_binary"
    if not binarize_input:
        graph.metadata["input"] = "spikes in {0, 1} (binlearn.spiking.local.input_spikes of the data)"
        return graph
    graph.metadata["input"] = "the data as given; input.threshold makes the spikes [x > 0]"
    first = next(target for source, target in graph.edges if source == "input")
    nodes = dict(graph.nodes)
    nodes[INPUT_THRESHOLD] = nir.Threshold(threshold=np.zeros(network.input_shape, dtype=np.float32))
    edges = [("input", INPUT_THRESHOLD), (INPUT_THRESHOLD, first),
             *[edge for edge in graph.edges if edge[0] != "input"]]
    order = ["input", INPUT_THRESHOLD, *[name for name in nodes if name not in ("input", INPUT_THRESHOLD)]]
    return nir.NIRGraph(nodes={name: nodes[name] for name in order}, edges=edges, metadata=graph.metadata)


def ep_to_nir(net: EnergyNet) -> NoReturn:
    """Refuse, in one line (NIRExportError), to write a binary EP network as NIR: no NIR graph
    runs it as :func:`binlearn.spiking.ep.simulate_ep` does (module docstring, docs/nir.md).

    Each neuron is s ← clamp((1 − γ)·s + γ·u, 0, 1), a = [s > θ], from s(0) = the initial
    state, u from the neighbours' spikes of the previous step. For γ < 1 (the paper's 0.5) the
    state is a leaky integrator held in [0, 1]; NIR's LI/LIF/IF/I have no bound on their state
    and no node clips one. For γ = 1 the neuron is memoryless, [u > θ] for 0 ≤ θ < 1 (an
    Affine into a Threshold), but every edge between layers carries the previous step's
    spikes: NIR can only write that as Delay nodes in a cycle, and it defines no output of a
    Delay before its first input — the initial state's spikes, which the first step reads
    (with the default initial state 1, every unit's). Networks that are not spiking networks
    at all are refused by :func:`binlearn.spiking.ep.check_spiking` (SpikingEPError) first.
    """
    from binlearn.energy.neurons import BinaryAccumulator
    from binlearn.spiking.ep import check_spiking

    check_spiking(net)  # every neuron a BinaryAccumulator, every coupling ±1 rows
    neurons = [neuron for neuron in net.neurons if isinstance(neuron, BinaryAccumulator)]
    leaky = [neuron.gamma for neuron in neurons if neuron.gamma < 1.0]
    if leaky:
        raise NIRExportError(f"a binary EP network has no exact NIR form: its neurons are leaky accumulators "
                             f"clipped to [0, 1] at every step (γ = {leaky[0]}), and no NIR node bounds or "
                             "clips a neuron's state (docs/nir.md, binary EP networks)")
    raise NIRExportError("a binary EP network has no exact NIR form: with γ = 1 its neurons are "
                         "Threshold nodes, but each step reads the previous step's spikes, which NIR writes "
                         "only as Delay nodes in a cycle, whose output before the first step (the spikes of "
                         "the initial state "
                         f"{neurons[0].initial_value}) NIR does not define (docs/nir.md, binary EP networks)")


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

        IF(r = 1, θ ≥ 0, v_reset = 0) -> snn.Leaky(β = 1, threshold θ per unit, reset to zero, same step)
        IF(r = 1, some θ < 0, …)      -> NIR's equations as written (v ← v + I; z = [v > θ]; v ← 0 where z)
        Affine(W, b)                  -> nn.Linear with W, b
        Flatten(start, end)           -> nn.Flatten over a batch (dims + 1; NIR shapes have no batch axis)
        Threshold(θ)                  -> z = [x > θ] as 0.0 / 1.0 (memoryless)

    snnTorch's own ``import_from_nir`` cannot read these graphs (it refuses per-unit
    thresholds), hence the mapping. snn.Leaky is NIR's IF only for θ ≥ 0: it decides a step's
    reset from the membrane left by the previous one, so after a spike (v = 0) a unit with
    θ < 0 is reset again and the next step's input is lost; local-binary networks have such
    units (θ = ⌈S/2⌉ − 1 < 0 where the row sum S < 0), so their IF layers run on NIR's
    equations. Needs ``nirtorch`` and ``snntorch`` (the test extra).
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
        if np.any(node.v_threshold < 0):
            return _IF(node)
        return snn.Leaky(beta=1.0, threshold=torch.from_numpy(np.asarray(node.v_threshold, dtype=np.float32)),
                         reset_mechanism="zero", reset_delay=False, init_hidden=True)

    def affine(node):
        module = nn.Linear(node.weight.shape[1], node.weight.shape[0])
        module.weight.data, module.bias.data = torch.from_numpy(node.weight), torch.from_numpy(node.bias)
        return module

    def flatten(node):
        return nn.Flatten(node.start_dim + 1, node.end_dim if node.end_dim < 0 else node.end_dim + 1)

    return nirtorch.nir_to_torch(graph, {nir.IF: leaky, nir.Affine: affine, nir.Flatten: flatten,
                                         nir.Threshold: _Threshold})


class _IF(nn.Module):
    """NIR's IF node with r = 1 and one unit time step, as NIR defines it: v ← v + I;
    z = [v > v_threshold]; v ← v_reset where z (a nirtorch stateful module: the state is v)."""

    threshold: torch.Tensor  # buffers
    reset: torch.Tensor

    def __init__(self, node) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.from_numpy(np.asarray(node.v_threshold, dtype=np.float32)))
        self.register_buffer("reset", torch.from_numpy(np.asarray(node.v_reset, dtype=np.float32)))

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        v = x if state is None else state + x
        z = (v > self.threshold).float()
        return z, torch.where(z > 0, self.reset, v)


class _Threshold(nn.Module):
    """NIR's Threshold node, z = 1 where x > θ, else 0 (no state)."""

    threshold: torch.Tensor  # a buffer

    def __init__(self, node) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.from_numpy(np.asarray(node.threshold, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).float()


@torch.no_grad()
def reference_outputs(graph, x: torch.Tensor, steps: int) -> torch.Tensor:
    """The accumulated output after each of ``steps`` steps, ``(steps, batch, classes)``, as
    :func:`reference_reader` runs ``graph`` with the image as the input of every step (direct
    encoding) and its output summed over the steps (binlearn's output integrator: compare with
    :attr:`~binlearn.spiking.simulate.SimulationResult.outputs`)."""
    reader = reference_reader(graph)
    total: torch.Tensor | None = None
    state = None  # nirtorch's state of the stateful modules (snn.Leaky keeps its own: init_hidden)
    outputs = []
    for _ in range(steps):
        output, state = reader(x, state)
        total = output.clone() if total is None else total + output
        outputs.append(total)
    return torch.stack(outputs)


def reference_predictions(graph, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Class per image after each of ``steps`` steps, ``(steps, batch)``: the argmax of
    :func:`reference_outputs`."""
    return reference_outputs(graph, x, steps).argmax(dim=-1)
