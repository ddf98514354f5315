"""In-memory datasets: every split is a pair of tensors, so batching is plain indexing."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Dataset"]


@dataclass
class Dataset:
    """A classification dataset held as tensors.

    Attributes:
        name: registry name (``"mnist"``, ``"digits"``, ...).
        x_train: (n_train, channels, height, width) float32, already encoded.
        y_train: (n_train,) int64 class labels in ``[0, num_classes)``.
        x_test, y_test: the official test split, same layout.
        x_val, y_val: validation split carved from the end of the training files
            (``validation_size``), possibly empty.
        num_classes: number of classes.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, ``(channels, height, width)``."""
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(self.name, self.x_train.to(device), self.y_train.to(device), self.x_test.to(device),
                       self.y_test.to(device), self.x_val.to(device), self.y_val.to(device),
                       num_classes=self.num_classes)
