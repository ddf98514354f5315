"""Feed-forward binary layers and networks (used by the STE baseline, the local rule, conversion)."""

from binlearn.nn.layers import BinaryLinear, mlp, summary

__all__ = ["BinaryLinear", "mlp", "summary"]
