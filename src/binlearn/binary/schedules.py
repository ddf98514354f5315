"""Relaxation schedules as data: which layers one step updates together, and in what order.

    one step = for each group G, in order:  s_l ← step_l(s_l, u_l(s))  for every l ∈ G,
               every u_l of G computed from the state s before G

A schedule is a tuple of groups, each written ``(first, stride)`` over the dynamical layers
0 … L−1 (0 = the first hidden layer), so one value serves any depth:

- ``"synchronous"`` ``((0, 1),)``: one group, every layer from the previous state at once
  (Ernoult et al. 2019; Laydevant et al. 2021);
- ``"even_odd"`` ``((0, 2), (1, 2))``: layers 0, 2, 4, … then 1, 3, 5, …, each half-sweep
  reading the other's latest state (Scellier et al., NeurIPS 2023).

The float relaxation (:mod:`binlearn.energy.relax`) and the packed format's integer one
(:mod:`binlearn.binary.packed_dynamics`) both read their groups from here. It lives on the
binary floor because that is the lowest floor both of them import.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RelaxationSchedule", "SYNCHRONOUS_SCHEDULE", "EVEN_ODD_SCHEDULE", "SCHEDULES",
           "relaxation_schedule"]


@dataclass(frozen=True)
class RelaxationSchedule:
    """One step's groups of layers, in order, as ``(first, stride)`` pairs.

    Args:
        name: the schedule's name in configuration files (``rule.relaxation``) and packed files.
        groups_by_stride: ``((first, stride), …)``; group g holds layers first, first + stride, …
    """

    name: str
    groups_by_stride: tuple[tuple[int, int], ...]

    def groups(self, count: int) -> tuple[tuple[int, ...], ...]:
        """The layers (0-based) of each group for a network of ``count`` dynamical layers."""
        return tuple(tuple(range(first, count, stride)) for first, stride in self.groups_by_stride)


SYNCHRONOUS_SCHEDULE = RelaxationSchedule("synchronous", ((0, 1),))
EVEN_ODD_SCHEDULE = RelaxationSchedule("even_odd", ((0, 2), (1, 2)))
_BY_NAME = {schedule.name: schedule for schedule in (SYNCHRONOUS_SCHEDULE, EVEN_ODD_SCHEDULE)}
SCHEDULES = tuple(_BY_NAME)
"""The schedules' names: ``("synchronous", "even_odd")``."""


def relaxation_schedule(schedule: str | RelaxationSchedule) -> RelaxationSchedule:
    """The schedule for a name (or the schedule itself); an unknown name is a one-line
    ``ValueError`` that lists the valid ones."""
    if isinstance(schedule, RelaxationSchedule):
        return schedule
    if schedule not in _BY_NAME:
        raise ValueError(f"unknown relaxation schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    return _BY_NAME[schedule]
