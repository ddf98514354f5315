"""Immutable relaxation state of an energy-based network.

A state is one tensor per *dynamical* layer, ordered from the input side: ``layers[0]``
is the first hidden layer, ``layers[-1]`` the output layer (or the last hidden layer when
the network has a cross-entropy readout). The input layer is clamped to the data and is
not part of the state. Each tensor holds the neurons' *internal* variable (for a hard
sigmoid neuron the activation itself, for a binary neuron its accumulator); what a layer
communicates to its neighbours is ``neuron.activation(state)``.

Relaxation never modifies a state: it returns a new one, so the free-phase fixed point is
simply kept while the nudged phases run.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["EnergyState"]


class EnergyState(NamedTuple):
    """Per-layer internal states.

    Args:
        layers: tuple of tensors, ``layers[i]`` of shape ``(batch, *layer_shape[i])``,
            input side first, output last.
    """

    layers: tuple[torch.Tensor, ...]

    @property
    def output(self) -> torch.Tensor:
        """The last dynamical layer, ``(batch, *output_shape)``."""
        return self.layers[-1]

    def detach(self) -> EnergyState:
        return EnergyState(tuple(layer.detach() for layer in self.layers))

    def clone(self) -> EnergyState:
        return EnergyState(tuple(layer.clone() for layer in self.layers))
