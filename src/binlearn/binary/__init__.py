"""Binary primitives (no training logic): quantizers, bit packing, XNOR-popcount kernels,
the packed model format.

The convention, stated once: sign(0) = +1, Heaviside(0) = 0, bit 1 <-> +1;
see :mod:`binlearn.binary.quantizers` and ``docs/packed-format.md``.
"""

from binlearn.binary.quantizers import (
    BinarySign,
    Heaviside,
    Sign,
    heaviside,
    heaviside_ste,
    sign,
    sign_ste,
)

__all__ = ["sign", "heaviside", "sign_ste", "heaviside_ste", "Sign", "Heaviside", "BinarySign"]
