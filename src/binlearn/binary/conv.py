"""Binary convolution on the packed XNOR-popcount kernel (im2col over ±1 values, then pack).

out[b, o, i, j] = Σ_{c, u, v} x_pad[b, c, s·i + u, s·j + v] · w[o, c, u, v]
               = K − 2·popcount(patch XOR w[o]),   K = in_channels · kh · kw.

A ±1 tensor has no zero, so padding needs a value: ``pad_value`` ∈ {−1, +1} (default +1,
the bit 1 that sign(0) = +1 gives). Patches are flattened in (channel, row, column) order,
the order of ``w.reshape(out_channels, -1)``, so weights pack with
``pack_signs(w.reshape(out_channels, -1))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from binlearn.binary.kernels import binary_dense
from binlearn.binary.packing import pack_signs

__all__ = ["binary_conv2d", "pack_conv_weight", "conv_output_size"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """⌊(size + 2·padding − kernel) / stride⌋ + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def pack_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """(out_channels, in_channels, kh, kw) real → (out_channels, words) int64, bit = (w >= 0)."""
    return pack_signs(weight.reshape(weight.shape[0], -1))


def binary_conv2d(x: torch.Tensor, w_words: torch.Tensor, kernel_size: tuple[int, int],
                  stride: int = 1, padding: int = 0, pad_value: int = 1,
                  backend: str = "auto") -> torch.Tensor:
    """The ±1 convolution above, exact in integers.

    Args:
        x: (batch, in_channels, height, width), values in {−1, +1} (any real dtype; the
            sign is taken with sign(0) = +1).
        w_words: (out_channels, words) int64 from :func:`pack_conv_weight`.
        kernel_size: (kh, kw); stride, padding: ints; pad_value: −1 or +1.
        backend: as in :func:`binlearn.binary.kernels.binary_dense`.
    Returns:
        (batch, out_channels, out_height, out_width) int32.
    """
    if pad_value not in (-1, 1):
        raise ValueError(f"pad_value must be -1 or +1, got {pad_value}")
    batch, channels, height, width = x.shape
    kh, kw = kernel_size
    signs = torch.where(x >= 0, 1.0, -1.0)
    if padding:
        signs = F.pad(signs, (padding, padding, padding, padding), value=float(pad_value))
    patches = F.unfold(signs, (kh, kw), stride=stride)  # (batch, C·kh·kw, L)
    out_h = conv_output_size(height, kh, stride, padding)
    out_w = conv_output_size(width, kw, stride, padding)
    rows = patches.transpose(1, 2).reshape(batch * out_h * out_w, channels * kh * kw)
    out = binary_dense(pack_signs(rows), w_words, channels * kh * kw, backend=backend)
    return out.reshape(batch, out_h, out_w, -1).permute(0, 3, 1, 2).contiguous()
