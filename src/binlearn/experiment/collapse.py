"""Say when a run trains at chance: a setting far off its scale (a learning rate of 1e-320 or
1e30, β = 1e6) can leave the network guessing while every epoch ends with exit 0.

After each epoch the runner asks :func:`at_chance` whether the epoch's training accuracy is
indistinguishable from the accuracy of always answering the commonest class, p0:

    accuracy ≤ p0 + 3·√(p0 (1 − p0) / n)      (n training samples of the epoch)

i.e. not above chance by more than three binomial standard deviations (a network that learned
anything at all clears that after one epoch). The test is made only when it can tell: when
those three deviations are less than half the way from p0 to a perfect score (a handful of
samples never warns). The warning (:class:`CollapseWarning`) names the settings of the run
that lie far from their defaults, the likely culprits.

Saturation (hidden units at their clamp bounds) is not tested: a healthy hard-sigmoid energy
net already holds most of its hidden units at 0 or 1, so it does not tell a collapse apart.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from binlearn.errors import BinlearnError, BinlearnWarning

__all__ = ["CollapseWarning", "TrainingCollapsed", "CHANCE", "chance_level", "at_chance", "culprits",
           "collapse_message"]

CHANCE = "chance"
"""The name of the warning in an epoch's metrics record (``"warnings": ["chance"]``)."""

DEVIATIONS = 3.0
"""How many binomial standard deviations above chance still count as chance."""

FAR_RATIO = 1e3
"""A setting this many times larger (or smaller) than its default is named as a likely culprit."""

FAR_ABSOLUTE = (1e-12, 1e6)
"""For a setting without a numeric default: magnitudes outside this range are named."""

SECTIONS = ("optimizer", "rule", "model")
"""The config sections whose numbers decide how a network learns."""


class CollapseWarning(BinlearnWarning):
    """An epoch trained at chance accuracy (the network may have collapsed)."""


class TrainingCollapsed(BinlearnError, RuntimeError):
    """``train.stop_on_collapse``: an epoch trained at chance, so the run stopped."""


def chance_level(labels: torch.Tensor) -> float:
    """p0: the accuracy of always answering the commonest class of ``labels`` (1/K when the
    K classes are balanced); 0 for no labels."""
    if labels.numel() == 0:
        return 0.0
    return float(torch.bincount(labels.flatten().long().cpu()).max()) / labels.numel()


def at_chance(accuracy: float, chance: float, samples: float) -> bool:
    """Whether ``accuracy`` over ``samples`` is at most DEVIATIONS binomial deviations above
    ``chance``; False when so few samples cannot tell chance from learning."""
    if samples <= 0 or not 0 < chance < 1:
        return False
    margin = DEVIATIONS * math.sqrt(chance * (1 - chance) / samples)
    return margin < (1 - chance) / 2 and accuracy <= chance + margin


def _far(value: Any, default: Any) -> bool:
    """A float (a rate, β, a gain: counts such as steps are not rates) far from its default
    (FAR_RATIO), or for no numeric default, of an extreme magnitude (FAR_ABSOLUTE)."""
    if not isinstance(value, float) or value == 0 or not math.isfinite(value):
        return False
    if isinstance(default, int | float) and not isinstance(default, bool) and default:
        ratio = abs(value / default)
        return not 1 / FAR_RATIO < ratio < FAR_RATIO
    return not FAR_ABSOLUTE[0] < abs(value) < FAR_ABSOLUTE[1]


def _default(item: dataclasses.Field[Any]) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return None


def culprits(config: Any) -> list[str]:
    """``section.key (value)`` for each setting of [optimizer], [rule] and [model] that lies
    far from its default (per entry for per-layer lists)."""
    found = []
    for section in SECTIONS:
        table = getattr(config, section, None)
        if table is None or not dataclasses.is_dataclass(table):
            continue
        for item in dataclasses.fields(table):
            value, default = getattr(table, item.name), _default(item)
            values = value if isinstance(value, list | tuple) else [value]
            defaults = default if isinstance(default, list | tuple) and len(default) == len(values) \
                else [default] * len(values)
            if any(_far(v, d) for v, d in zip(values, defaults, strict=True)):
                found.append(f"{section}.{item.name} ({value!r})")
    return found


def collapse_message(epoch: int, accuracy: float, chance: float, samples: float, config: Any) -> str:
    """One line: the epoch at chance, and which settings to check."""
    named = culprits(config)
    check = (f"check {', '.join(named)}" if named else
             "no optimizer, rule or model setting is far from its default; check the learning rates")
    return (f"epoch {epoch}: training accuracy {accuracy:.3f} is at chance ({chance:.3f}, the "
            f"commonest class, over {int(samples)} samples): the network may have collapsed; {check}")
