"""EnergyNet: a layered Hopfield-like network with symmetric two-way couplings.

    Φ(x, s) = Σ_c top_c · (P(W_c ∗ bottom_c) + b_c)            (primitive function)
    E(x, s) = ½ Σ_l ‖s_l‖² − Φ(x, s)                          (energy, hard-sigmoid nets)

The input x is layer 0, clamped; layers 1 … L are dynamical, coupled only to their
neighbours, so each layer's drive is u_l = ∂Φ/∂a_l = (up from l−1) + (down from l+1).
One family: fully connected and convolutional networks, float or binary weights, float or
binary neurons are all an :class:`EnergyNet` built from couplings, neuron objects and a
cost object (:func:`fully_connected`, :func:`convolutional`).

Reference: Scellier & Bengio 2017; Ernoult et al. 2019; Laydevant et al. 2021.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from binlearn.energy.costs import CrossEntropyReadout, SquaredError
from binlearn.energy.couplings import ConvPool, Coupling, Dense, FloatWeights, WeightBehaviour
from binlearn.energy.neurons import HardSigmoid, Neuron
from binlearn.energy.state import EnergyState

__all__ = ["EnergyNet", "fully_connected", "convolutional"]


class EnergyNet(nn.Module):
    """Couplings 0 … L−1 (coupling l joins layer l to layer l+1; layer 0 = input) + neurons.

    Args:
        input_shape: one sample's shape, e.g. ``(1, 28, 28)``.
        couplings: L couplings, input side first.
        neurons: one neuron object for every dynamical layer, or a sequence of L.
        cost: :class:`SquaredError` (output = layer L) or :class:`CrossEntropyReadout`.
    """

    couplings: Sequence[Dense | ConvPool]  # an nn.ModuleList (typed for what it holds)
    neurons: tuple[Neuron, ...]
    cost: SquaredError | CrossEntropyReadout

    def __init__(self, input_shape: Sequence[int], couplings: Sequence[Coupling],
                 neurons: Neuron | Sequence[Neuron], cost: SquaredError | CrossEntropyReadout):
        super().__init__()
        if len(couplings) < 1:
            raise ValueError("EnergyNet needs at least one coupling")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.couplings = nn.ModuleList(couplings)  # type: ignore[assignment]
        shapes = []
        bottom = self.input_shape
        for index, coupling in enumerate(self.couplings):
            try:
                bottom = coupling.top_shape(bottom)
            except ValueError as error:
                raise ValueError(f"layer {index + 1}: {error}") from None
            shapes.append(bottom)
        self.layer_shapes: tuple[tuple[int, ...], ...] = tuple(shapes)
        if isinstance(neurons, Sequence):
            if len(neurons) != len(couplings):
                raise ValueError(f"got {len(neurons)} neuron objects for {len(couplings)} layers")
            self.neurons = tuple(neurons)
        else:
            self.neurons = (neurons,) * len(couplings)
        last = math.prod(shapes[-1])
        if isinstance(cost, CrossEntropyReadout):
            if cost.in_features != last:
                raise ValueError(f"readout expects {cost.in_features} features, last layer has {last}")
        elif cost.num_outputs != last:
            raise ValueError(f"output layer has {last} neurons but the cost expects "
                             f"{cost.num_classes} classes x {cost.group_size} = {cost.num_outputs}")
        self.cost = cost  # a readout is a submodule (its parameters are trained), MSE is not

    @property
    def output_cost(self) -> SquaredError | CrossEntropyReadout:
        return self.cost

    @property
    def num_layers(self) -> int:
        """L, the number of dynamical layers."""
        return len(self.couplings)

    def initial_state(self, batch_size: int, device=None, dtype=torch.float32) -> EnergyState:
        """Each layer at its neuron's initial value, ``(batch, *layer_shape)``."""
        return EnergyState(tuple(
            neuron.initial((batch_size, *shape), dtype=dtype, device=device)
            for neuron, shape in zip(self.neurons, self.layer_shapes, strict=True)))

    def activations(self, state: EnergyState) -> tuple[torch.Tensor, ...]:
        """a_l = neuron_l.activation(s_l) for every dynamical layer."""
        return tuple(n.activation(s) for n, s in zip(self.neurons, state.layers, strict=True))

    def phi(self, x: torch.Tensor, state: EnergyState) -> torch.Tensor:
        """Φ(x, s) = Σ_c a_{c+1} · (P(W_c ∗ a_c) + b_c), per sample, (batch,). Autograd oracle."""
        activations = (x, *self.activations(state))
        total: Any = 0
        for index, coupling in enumerate(self.couplings):
            total = total + coupling.phi(activations[index], activations[index + 1],
                                         coupling.effective_weight(), coupling.bias)
        return total

    def energy(self, x: torch.Tensor, state: EnergyState) -> torch.Tensor:
        """E(x, s) = ½ Σ_l ‖s_l‖² − Φ(x, s), per sample (batch,); the Lyapunov function of
        hard-sigmoid (slope 1) networks, which each exact layer-wise minimisation lowers."""
        squares = sum(0.5 * s.flatten(1).pow(2).sum(dim=1) for s in state.layers)
        return squares - self.phi(x, state)

    def drives(self, x: torch.Tensor, state: EnergyState) -> tuple[torch.Tensor, ...]:
        """u_l = ∂Φ/∂a_l, hand-written (the same code path as relaxation), one per layer."""
        activations = (x, *self.activations(state))
        weights = [c.effective_weight() for c in self.couplings]
        ups = [c.drive_up(activations[i], weights[i], c.bias)
               for i, c in enumerate(self.couplings)]
        drives = []
        for index in range(self.num_layers):
            drive, _ = ups[index]
            if index + 1 < self.num_layers:
                drive = self.couplings[index + 1].drive_down(
                    activations[index + 2], weights[index + 1], ups[index + 1][1], drive)
            drives.append(drive)
        return tuple(drives)

    def predict(self, state: EnergyState) -> torch.Tensor:
        """Class predictions from a (free-phase) state, (batch,) int64."""
        return self.output_cost.predict(state.layers[-1], self.neurons[-1].activation(state.layers[-1]))

    def gradient_names(self) -> list[str]:
        """Names of every trainable tensor, as used in gradient dicts and ``state_dict``."""
        names = [f"couplings.{i}.{name}" for i, c in enumerate(self.couplings)
                 for name in c.gradient_names()]
        if self.output_cost.readout:
            names += ["cost.weight", "cost.bias"]
        return names


def _neurons_for(neuron: Neuron | Sequence[Neuron] | None, count: int) -> list[Neuron]:
    if neuron is None:
        return [HardSigmoid()] * count
    if isinstance(neuron, Sequence):
        return list(neuron)
    return [neuron] * count


def fully_connected(input_shape: Sequence[int], hidden: Sequence[int], num_classes: int,
                    neuron: Neuron | Sequence[Neuron] | None = None,
                    weight: WeightBehaviour | None = None, group_size: int = 1,
                    readout: str = "mse", gain: float = 1.0) -> EnergyNet:
    """A fully connected EnergyNet, e.g. 784-4096-10.

    Args:
        input_shape: one sample's shape (flattened internally).
        hidden: hidden layer sizes, e.g. ``[4096]``.
        num_classes: number of classes.
        neuron: neuron object(s) for the dynamical layers (default :class:`HardSigmoid`).
        weight: weight behaviour for every coupling (default :class:`FloatWeights`).
        group_size: output neurons per class (``"mse"`` readout only).
        readout: ``"mse"`` (output layer in the dynamics) or ``"cross_entropy"``.
        gain: multiplies the default initialisation of every coupling.
    """
    if readout not in ("mse", "cross_entropy"):
        raise ValueError(f"readout must be 'mse' or 'cross_entropy', got {readout!r}")
    if any(int(h) < 1 for h in hidden):
        raise ValueError(f"hidden sizes must be >= 1, got {list(hidden)}")
    weight = weight or FloatWeights()
    sizes = [math.prod(input_shape), *[int(h) for h in hidden]]
    if readout == "mse":
        sizes.append(num_classes * group_size)
    if len(sizes) < 2:
        raise ValueError("a cross-entropy readout needs at least one hidden layer")
    couplings = [Dense(sizes[i], sizes[i + 1], weight=weight, gain=gain)
                 for i in range(len(sizes) - 1)]
    cost = (SquaredError(num_classes, group_size) if readout == "mse"
            else CrossEntropyReadout(sizes[-1], num_classes))
    return EnergyNet(input_shape, couplings, _neurons_for(neuron, len(couplings)), cost)


def convolutional(input_shape: Sequence[int], channels: Sequence[int], num_classes: int,
                  kernel_size: int = 5, padding: int | Sequence[int] = 2,
                  pool: int | Sequence[int] = 2, neuron: Neuron | Sequence[Neuron] | None = None,
                  weight: WeightBehaviour | None = None, group_size: int = 1,
                  readout: str = "mse", gain: float = 1.0) -> EnergyNet:
    """Conv-pool layers then one dense output layer, e.g. MNIST 1-32-64 + fc 10.

    Args:
        input_shape: ``(channels, height, width)``.
        channels: output channels of each conv-pool layer, e.g. ``[32, 64]``.
        kernel_size, padding, pool: per network (int) or per conv layer (sequence).
        Other arguments as in :func:`fully_connected`.
    """
    if readout not in ("mse", "cross_entropy"):
        raise ValueError(f"readout must be 'mse' or 'cross_entropy', got {readout!r}")
    count = len(channels)
    paddings = [padding] * count if isinstance(padding, int) else list(padding)
    pools = [pool] * count if isinstance(pool, int) else list(pool)
    if len(paddings) != count or len(pools) != count:
        raise ValueError(f"padding and pool need one value per conv layer ({count})")
    weight = weight or FloatWeights()
    couplings: list[Coupling] = []
    shape = tuple(input_shape)
    in_channels = shape[0]
    for index, out_channels in enumerate(channels):
        conv = ConvPool(in_channels, out_channels, kernel_size, paddings[index], pools[index],
                        weight=weight, gain=gain)
        try:
            shape = conv.top_shape(shape)
        except ValueError as error:
            raise ValueError(f"layer {index + 1}: {error}") from None
        couplings.append(conv)
        in_channels = out_channels
    features = math.prod(shape)
    cost: SquaredError | CrossEntropyReadout
    if readout == "mse":
        couplings.append(Dense(features, num_classes * group_size, weight=weight, gain=gain))
        cost = SquaredError(num_classes, group_size)
    else:
        cost = CrossEntropyReadout(features, num_classes)
    return EnergyNet(input_shape, couplings, _neurons_for(neuron, len(couplings)), cost)
