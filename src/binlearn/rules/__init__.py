"""Learning rules acting on models through small protocols (see :mod:`binlearn.rules.base`)."""

from binlearn.rules.base import GradientRule, LocalRule, LocalStepResult
from binlearn.rules.ste import STE

__all__ = ["GradientRule", "LocalRule", "LocalStepResult", "STE"]
from binlearn.rules.bop import Bop  # noqa: E402
from binlearn.rules.bptt import BPTT, BPTTResult  # noqa: E402
from binlearn.rules.ep import EP, EPResult  # noqa: E402

__all__ += ["EP", "EPResult", "BPTT", "BPTTResult", "Bop"]
