"""Which artefacts a trained model becomes, keyed by (model type, target).

    (type of TrainedRun.model, target)  →  a converter (trained run, target options) → artefact

The targets are ``"packed"`` (the bit-exact 1-bit format, :mod:`binlearn.binary.packed_format`),
``"spiking"`` (an integrate-and-fire network, or the spiking view of a binary EP network) and
``"nir"`` (a NIR graph). A model type is looked up along its class hierarchy, so a subclass
of ``nn.Sequential`` takes the Sequential's converters. A pair with no converter, or one
registered as refused, is refused in one line that says why and what does convert: nothing in
binlearn chooses an artefact by the learner's class or by raw config text.

A new target or model type is one :func:`register` (or :func:`refuse`) call beside its
converter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from binlearn.errors import BinlearnError

__all__ = ["TARGETS", "ArtifactError", "Route", "register", "refuse", "route", "routes_for"]

TARGETS = ("packed", "spiking", "nir")

Converter = Callable[..., Any]
"""``converter(trained, **options) -> artefact``."""


class ArtifactError(BinlearnError, ValueError):
    """A model that has no form for the asked target, explained in one line."""


@dataclass(frozen=True)
class Route:
    """One (model type, target) pair: its converter, or the reason it is refused."""

    model_type: type
    target: str
    converter: Converter | None
    reason: str = ""
    what: str = ""  # the model in words, for messages ("an STE mlp / convnet")


_ROUTES: dict[tuple[type, str], Route] = {}


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ArtifactError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")


def register(model_type: type, target: str, converter: Converter, *, what: str = "") -> Converter:
    """Make ``converter`` the way ``model_type`` models become ``target``."""
    _check_target(target)
    _ROUTES[(model_type, target)] = Route(model_type, target, converter, what=what or model_type.__name__)
    return converter


def refuse(model_type: type, target: str, reason: str, *, what: str = "") -> None:
    """Record that ``model_type`` models have no ``target`` form, and why (one line)."""
    _check_target(target)
    _ROUTES[(model_type, target)] = Route(model_type, target, None, reason, what or model_type.__name__)


def routes_for(target: str) -> list[Route]:
    """The registered converters of ``target`` (refusals left out)."""
    return [r for (_, t), r in _ROUTES.items() if t == target and r.converter is not None]


def route(model: Any, target: str) -> Route:
    """The route of ``model`` (its type, along the class hierarchy) to ``target``.

    Raises:
        ArtifactError: no converter for the pair (the message lists what converts), or a
            registered refusal (its reason).
    """
    _check_target(target)
    for kind in type(model).__mro__:
        found = _ROUTES.get((kind, target))
        if found is None:
            continue
        if found.converter is None:
            raise ArtifactError(found.reason)
        return found
    takes = ", ".join(r.what for r in routes_for(target)) or "nothing yet"
    raise ArtifactError(f"a {type(model).__name__} model has no {target} form; {target} takes: {takes}")
