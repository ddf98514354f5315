"""Feed-forward binary layers and networks (used by the STE baseline, the local rule, conversion)."""

from binlearn.nn.activations import QCFS, qcfs
from binlearn.nn.layers import BinaryConv2d, BinaryLinear, convnet, mlp, summary

__all__ = ["BinaryLinear", "BinaryConv2d", "mlp", "convnet", "summary", "QCFS", "qcfs"]
