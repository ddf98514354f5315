"""Loading an optimizer's saved state under the hyper-parameters of today's config.

``torch.optim.Optimizer.load_state_dict`` restores the param groups too, so a learning rate
changed for a resume (config.toml) or a branch (``--branch-from P --set ...``) would be
recorded in the run directory and silently not used. Here the saved state (momentum
buffers, Adam moments and steps, Bop's m and flip counts) is loaded and every group setting
(lr, momentum, weight decay, Bop γ and τ, ...) is the one the learner was just built with
from its config; the learner then re-applies its schedule for the epochs already done.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["load_optimizer_state"]


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, keeping the optimizer's own group settings."""
    settings = [{key: value for key, value in group.items() if key != "params"}
                for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, own in zip(optimizer.param_groups, settings, strict=True):
        group.update(own)
