"""Learning rules acting on models through small protocols (see :mod:`binlearn.rules.base`)."""

from binlearn.rules.base import GradientRule, Learner, LocalReducer, Reducer
from binlearn.rules.ste import STE

__all__ = ["GradientRule", "Learner", "LocalReducer", "Reducer", "STE"]
