"""Binary primitives (no training logic): quantizers, bit packing, XNOR-popcount kernels,
binary convolution; the packed model format lives in :mod:`binlearn.binary.packed_format`
(imported on its own: it loads numba).

The convention, stated once: sign(0) = +1, Heaviside(0) = 0, bit 1 <-> +1;
see :mod:`binlearn.binary.quantizers` and ``docs/packed-format.md``.
"""

from binlearn.binary.conv import binary_conv2d, pack_conv_weight
from binlearn.binary.kernels import BACKENDS, binary_dense
from binlearn.binary.packing import (
    BIT_ORDERS,
    WORD_BITS,
    pack_bits,
    pack_signs,
    unpack_bits,
    unpack_signs,
    words_for,
)
from binlearn.binary.quantizers import (
    BinarySign,
    Heaviside,
    Sign,
    heaviside,
    heaviside_ste,
    sign,
    sign_ste,
)

__all__ = [
    "sign", "heaviside", "sign_ste", "heaviside_ste", "Sign", "Heaviside", "BinarySign",
    "WORD_BITS", "BIT_ORDERS", "words_for", "pack_bits", "unpack_bits", "pack_signs", "unpack_signs",
    "binary_dense", "BACKENDS", "binary_conv2d", "pack_conv_weight",
]
