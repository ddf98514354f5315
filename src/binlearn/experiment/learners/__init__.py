"""The two learners and the model families they train.

:mod:`~binlearn.experiment.learners.gradient` holds the :class:`GradientLearner` (EP, BPTT,
STE: optimizers routed by weight precision, one schedule), :mod:`~binlearn.experiment.learners.local`
the :class:`LocalLearner` (the local binary rule, CP+R: the rule owns its state). Each family
module (:mod:`.energy`, :mod:`.ste`, :mod:`.local_binary`) registers its config dataclasses
and builder with the runner; importing this package registers them all."""

from binlearn.experiment.learners import (
    energy,  # noqa: F401
    local_binary,  # noqa: F401
    ste,  # noqa: F401
)
from binlearn.experiment.learners.gradient import GradientLearner
from binlearn.experiment.learners.local import LocalLearner

__all__ = ["GradientLearner", "LocalLearner"]
