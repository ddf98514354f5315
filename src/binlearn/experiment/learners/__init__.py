"""Learner adapters: each module wires one model family to the rules that train it and
registers its config dataclasses and builder with the runner. Importing this package
registers them all."""

from binlearn.experiment.learners import (
    energy,  # noqa: F401
    local_binary,  # noqa: F401
    ste,  # noqa: F401
)
