"""Learning rules acting on models through small protocols (:mod:`binlearn.rules.base`):
gradient rules (EP, BPTT, STE) return ``{parameter name: gradient}`` for any optimizer
(SGD, Bop, the integer synapse optimizers IntegerCounter and HiddenInteger); local rules (the
binary-native rule, CP+R) update their integer weights in place."""

from binlearn.rules.base import GradientRule, LocalRule, LocalStepResult
from binlearn.rules.bop import Bop
from binlearn.rules.bptt import BPTT, BPTTResult
from binlearn.rules.cpr import CPR, CommitteeParameters
from binlearn.rules.ep import EP, EPResult
from binlearn.rules.integer_synapse import HiddenInteger, IntegerCounter
from binlearn.rules.local_binary import LocalBinary, LocalBinaryParameters
from binlearn.rules.ste import STE

__all__ = ["GradientRule", "LocalRule", "LocalStepResult", "EP", "EPResult", "BPTT", "BPTTResult", "STE",
           "Bop", "IntegerCounter", "HiddenInteger", "LocalBinary", "LocalBinaryParameters", "CPR",
           "CommitteeParameters"]
