"""mmcv 1.7.2's LR and momentum policies as closed forms ``policy(base, t, total) -> value``.

A policy is a frozen record called with the group's base value, the progress ``t`` (epoch or
iteration, 0-based) and the run's length ``total`` in the same unit (``max_epochs`` or
``max_iters``). Policies never see warmup, param groups or torch: :mod:`._schedule` adds
warmup and picks ``t``/``total`` from the run's counters.

The arithmetic follows mmcv's operation for operation, so values agree to the last bits
(the golden tests ask for a relative error below 1e-9).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from fsm_trainer.errors import MappingKeyError, ScheduleConfigError


def annealing_cos(start: float, end: float, factor: float, weight: float = 1.0) -> float:
    """Cosine from ``weight * start + (1 - weight) * end`` (factor 0) to ``end`` (factor 1).

    >>> annealing_cos(1.0, 0.0, 0.0), annealing_cos(1.0, 0.0, 0.5), annealing_cos(1.0, 0.0, 1.0)
    (1.0, 0.5, 0.0)
    """
    cos_out = math.cos(math.pi * factor) + 1
    return end + 0.5 * weight * (start - end) * cos_out


def annealing_linear(start: float, end: float, factor: float) -> float:
    """Straight line from ``start`` (factor 0) to ``end`` (factor 1).

    >>> annealing_linear(1.0, 0.0, 0.25)
    0.75
    """
    return start + (end - start) * factor


ANNEAL = {"cos": annealing_cos, "linear": annealing_linear}
"""``anneal_strategy`` name -> annealing function."""


def _target(base: float, min_value: float | None, min_ratio: float | None) -> float:
    return base * min_ratio if min_ratio is not None else min_value  # type: ignore[return-value]


@attrs.frozen
class Fixed:
    """The base value, always.

    >>> Fixed()(0.1, 7, 10)
    0.1
    """

    def __call__(self, base: float, t: int, total: int) -> float:
        return base


@attrs.frozen
class Step:
    """``base * gamma ** k``, ``k`` = steps passed (every ``step`` units, or milestones), clipped below.

    >>> [Step((2, 3), gamma=0.1)(1.0, t, 5) for t in range(5)]
    [1.0, 1.0, 0.1, 0.010000000000000002, 0.010000000000000002]
    >>> [Step(2, gamma=0.5, min_value=0.3)(1.0, t, 6) for t in range(6)]
    [1.0, 1.0, 0.5, 0.5, 0.3, 0.3]
    """

    step: int | tuple[int, ...]
    gamma: float = 0.1
    min_value: float | None = None

    def __call__(self, base: float, t: int, total: int) -> float:
        if isinstance(self.step, int):
            k = t // self.step
        else:
            k = len(self.step)
            for i, s in enumerate(self.step):
                if t < s:
                    k = i
                    break
        value = base * (self.gamma**k)
        return value if self.min_value is None else max(value, self.min_value)


@attrs.frozen
class Exp:
    """``base * gamma ** t``.

    >>> Exp(0.5)(1.0, 3, 10)
    0.125
    """

    gamma: float

    def __call__(self, base: float, t: int, total: int) -> float:
        return base * self.gamma**t


@attrs.frozen
class Poly:
    """``(base - min) * (1 - t / total) ** power + min``.

    >>> Poly(power=2.0)(1.0, 5, 10)
    0.25
    """

    power: float = 1.0
    min_value: float = 0.0

    def __call__(self, base: float, t: int, total: int) -> float:
        coeff: float = (1 - t / total) ** self.power
        return (base - self.min_value) * coeff + self.min_value


@attrs.frozen
class Inv:
    """``base * (1 + gamma * t) ** -power``.

    >>> Inv(gamma=1.0, power=1.0)(1.0, 3, 10)
    0.25
    """

    gamma: float
    power: float = 1.0

    def __call__(self, base: float, t: int, total: int) -> float:
        decay: float = (1 + self.gamma * t) ** (-self.power)
        return base * decay


@attrs.frozen
class CosineAnnealing:
    """Half a cosine from ``base`` (t = 0) to the minimum (t = total); minimum absolute or relative.

    >>> CosineAnnealing(min_ratio=0.0)(1.0, 5, 10)
    0.5
    """

    min_value: float | None = None
    min_ratio: float | None = None

    def __call__(self, base: float, t: int, total: int) -> float:
        return annealing_cos(base, _target(base, self.min_value, self.min_ratio), t / total)


@attrs.frozen
class LinearAnnealing:
    """A straight line from ``base`` (t = 0) to the minimum (t = total).

    >>> LinearAnnealing(min_value=0.0)(1.0, 5, 10)
    0.5
    """

    min_value: float | None = None
    min_ratio: float | None = None

    def __call__(self, base: float, t: int, total: int) -> float:
        return annealing_linear(base, _target(base, self.min_value, self.min_ratio), t / total)


@attrs.frozen
class FlatCosineAnnealing:
    """``base`` until ``round(total * start_percent)``, then cosine down to the minimum at ``total``.

    >>> [FlatCosineAnnealing(0.5, min_ratio=0.0)(1.0, t, 4) for t in range(4)]
    [1.0, 1.0, 1.0, 0.5]
    """

    start_percent: float = 0.75
    min_value: float | None = None
    min_ratio: float | None = None

    def __call__(self, base: float, t: int, total: int) -> float:
        start = round(total * self.start_percent)
        if t < start:
            return base
        return annealing_cos(base, _target(base, self.min_value, self.min_ratio), (t - start) / (total - start))


@attrs.frozen
class CosineRestart:
    """Cosine annealing restarted after each of ``periods``, the i-th cycle starting ``weights[i]`` of the way up.

    >>> p = CosineRestart((2, 2), (1.0, 0.5), min_value=0.0)
    >>> [p(1.0, t, 4) for t in range(4)]
    [1.0, 0.5, 0.5, 0.25]
    """

    periods: tuple[int, ...]
    restart_weights: tuple[float, ...] = (1.0,)
    min_value: float | None = None
    min_ratio: float | None = None

    def __call__(self, base: float, t: int, total: int) -> float:
        target = _target(base, self.min_value, self.min_ratio)
        restart = 0
        for period, weight in zip(self.periods, self.restart_weights, strict=True):
            if t < restart + period:
                alpha = min((t - restart) / period, 1)
                return annealing_cos(base, target, alpha, weight)
            restart += period
        msg = f"progress {t} is past the end of periods {list(self.periods)} (they sum to {restart})"
        raise ScheduleConfigError(msg)


@attrs.frozen
class Cyclic:
    """Cycles of ``total // cyclic_times`` units: up to ``base * ratio[0]``, then down to ``base * ratio[1]``.

    The excursion of cycle ``c`` is scaled by ``gamma ** c``; ``anneal`` is ``"cos"`` or ``"linear"``.

    >>> p = Cyclic((2.0, 0.5), cyclic_times=2, step_ratio_up=0.5, anneal="linear")
    >>> [p(1.0, t, 8) for t in range(8)]
    [1.0, 1.5, 2.0, 1.25, 1.0, 1.5, 2.0, 1.25]
    """

    target_ratio: tuple[float, float] = (10.0, 1e-4)
    cyclic_times: int = 1
    step_ratio_up: float = 0.4
    anneal: str = "cos"
    gamma: float = 1.0

    def phases(self, total: int) -> tuple[int, tuple[tuple[int, int, float, float], ...]]:
        """``(units per cycle, ((start, end, start_ratio, end_ratio), ...))`` for a run of ``total``."""
        per_cycle = total // self.cyclic_times
        up = int(self.step_ratio_up * per_cycle)
        r0, r1 = self.target_ratio
        return per_cycle, ((0, up, 1, r0), (up, per_cycle, r0, r1))

    def bind(self, total: int) -> Callable[[float, int], float]:
        """``(base, t) -> value`` for a run of ``total``, with the phases computed once."""
        per_cycle, phases = self.phases(total)
        anneal, gamma = ANNEAL[self.anneal], self.gamma
        (_, e0, _, r0), (s1, e1, _, r1) = phases
        if s1 == 0:  # an empty rise: the fall is mmcv's "phase starting at 0" (see __call__)
            return lambda b, t: self(b, t, total)

        def value(base: float, t: int) -> float:
            cur = t % per_cycle
            scale = gamma ** (t // per_cycle)
            if cur < e0:
                return anneal(base * 1, base * (1 - scale + r0 * scale), cur / e0)
            return anneal(base * (1 - scale + r0 * scale), base * r1, (cur - s1) / (e1 - s1))

        return value

    def __call__(self, base: float, t: int, total: int) -> float:
        per_cycle, phases = self.phases(total)
        cur = t % per_cycle
        scale = self.gamma ** (t // per_cycle)
        for start, end, start_ratio, end_ratio in phases:
            if start <= cur < end:
                # mmcv scales the ratio at the end of a phase starting at 0 and at the start of any
                # other; with step_ratio_up giving an empty rise, the fall starts at 0 (a quirk we keep).
                if start == 0:
                    end_ratio = 1 - scale + end_ratio * scale
                else:
                    start_ratio = 1 - scale + start_ratio * scale
                return ANNEAL[self.anneal](base * start_ratio, base * end_ratio, (cur - start) / (end - start))
        msg = f"no cyclic phase holds progress {t} (cycle length {per_cycle})"  # unreachable for per_cycle > 0
        raise ScheduleConfigError(msg)


def _one_cycle_value(phases: Sequence[tuple[float, Any, Any]], t: int, last_is_open: bool) -> tuple[Any, Any, float]:
    start = 0.0
    for i, (end, a, b) in enumerate(phases):
        if t <= end or (last_is_open and i == len(phases) - 1):
            # mmcv divides by zero here when the first phase ends at 0; we return its start value.
            pct = 0.0 if end == start else (t - start) / (end - start)
            return a, b, pct
        start = end
    msg = f"iteration {t} is past the last one-cycle phase (ends at {phases[-1][0]})"
    raise ScheduleConfigError(msg)


@attrs.frozen
class OneCycle:
    """The 1cycle LR: ``base = max_lr / div_factor`` up to ``max_lr``, then down to ``base / final_div_factor``.

    ``total`` is the run's ``max_iters``; ``total_steps`` overrides it. With ``three_phase`` the
    descent back to ``base`` mirrors the rise and a third phase anneals to the minimum.

    >>> p = OneCycle(max_lr=1.0, pct_start=0.5, anneal="linear", div_factor=4, final_div_factor=1)
    >>> [p(0.25, t, 6) for t in range(6)]
    [0.25, 0.625, 1.0, 0.75, 0.5, 0.25]
    """

    max_lr: float | tuple[float, ...] | Mapping[str, Any]
    total_steps: int | None = None
    pct_start: float = 0.3
    anneal: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False

    def steps(self, total: int) -> int:
        """The cycle's length for a run of ``total`` iterations."""
        return self.total_steps if self.total_steps is not None else total

    def phases(self, total: int) -> tuple[tuple[float, float, float], ...]:
        """``((end_iter, start_factor, end_factor), ...)``, factors relative to ``base``."""
        n = self.steps(total)
        pct, div = self.pct_start, self.div_factor
        if self.three_phase:
            return (
                (float(pct * n) - 1, 1, div),
                (float(2 * pct * n) - 2, div, 1),
                (n - 1, 1, 1 / self.final_div_factor),
            )
        return ((float(pct * n) - 1, 1, div), (n - 1, div, 1 / self.final_div_factor))

    def base_values(self, n_groups: int, name: str) -> list[float]:
        """Each group's ``base`` (``max_lr / div_factor``) for an optimizer called ``name``."""
        return [lr / self.div_factor for lr in per_group(self.max_lr, n_groups, name, "max_lr")]

    def bind(self, total: int) -> Callable[[float, int], float]:
        """``(base, t) -> value`` for a run of ``total``, with the phases computed once."""
        phases, anneal = self.phases(total), ANNEAL[self.anneal]

        last: list[Any] = [None, None]  # every param group asks about the same t in a row

        def value(base: float, t: int) -> float:
            if last[0] != t:
                last[0], last[1] = t, _one_cycle_value(phases, t, last_is_open=False)
            a, b, pct = last[1]
            return anneal(base * a, base * b, pct)

        return value

    def __call__(self, base: float, t: int, total: int) -> float:
        a, b, pct = _one_cycle_value(self.phases(total), t, last_is_open=False)
        return ANNEAL[self.anneal](base * a, base * b, pct)


@attrs.frozen
class OneCycleMomentum:
    """The 1cycle momentum: ``max_momentum`` down to ``base_momentum`` while the LR rises, and back.

    Here ``base`` is a ``(base_momentum, max_momentum)`` pair (see :meth:`base_values`), and
    ``total`` is always the run's ``max_iters`` (mmcv ignores the LR's ``total_steps`` here).

    >>> p = OneCycleMomentum(0.8, 1.0, pct_start=0.5, anneal="linear")
    >>> [round(p((0.8, 1.0), t, 6), 3) for t in range(6)]
    [1.0, 0.9, 0.8, 0.867, 0.933, 1.0]
    """

    base_momentum: float | tuple[float, ...] | Mapping[str, Any] = 0.85
    max_momentum: float | tuple[float, ...] | Mapping[str, Any] = 0.95
    pct_start: float = 0.3
    anneal: str = "cos"
    three_phase: bool = False

    def phases(self, total: int) -> tuple[tuple[float, int, int], ...]:
        """``((end_iter, start_index, end_index), ...)`` into the ``(base, max)`` pair."""
        pct = self.pct_start
        if self.three_phase:
            return ((float(pct * total) - 1, 1, 0), (float(2 * pct * total) - 2, 0, 1), (total - 1, 1, 1))
        return ((float(pct * total) - 1, 1, 0), (total - 1, 0, 1))

    def base_values(self, n_groups: int, name: str) -> list[tuple[float, float]]:
        """Each group's ``(base_momentum, max_momentum)`` for an optimizer called ``name``."""
        lo = per_group(self.base_momentum, n_groups, name, "base_momentum")
        hi = per_group(self.max_momentum, n_groups, name, "max_momentum")
        return list(zip(lo, hi, strict=True))

    def bind(self, total: int) -> Callable[[Any, int], float]:
        """``(base, t) -> value`` for a run of ``total``, with the phases computed once."""
        phases, anneal = self.phases(total), ANNEAL[self.anneal]

        last: list[Any] = [None, None]

        def value(base: Any, t: int) -> float:
            if last[0] != t:
                last[0], last[1] = t, _one_cycle_value(phases, t, last_is_open=True)
            a, b, pct = last[1]
            return anneal(base[a], base[b], pct)

        return value

    def __call__(self, base: Any, t: int, total: int) -> float:
        a, b, pct = _one_cycle_value(self.phases(total), t, last_is_open=True)
        return ANNEAL[self.anneal](base[a], base[b], pct)


def bind(policy: Any, total: int | None) -> Callable[[Any, int], float]:
    """``(base, t) -> value`` for runs of ``total``: the policy's own fast form when it has one.

    >>> bind(Poly(), 4)(1.0, 1)
    0.75
    """
    if hasattr(policy, "bind"):
        fast: Callable[[Any, int], float] = policy.bind(total)
        return fast
    return lambda base, t: policy(base, t, total)


def per_group(value: Any, n_groups: int, name: str, key: str) -> list[float]:
    """Expand a number, a per-group list or a per-optimizer dict of those, as mmcv's ``format_param``.

    >>> per_group(0.1, 2, "SGD", "max_lr"), per_group({"gen": [1, 2]}, 2, "gen", "max_lr")
    ([0.1, 0.1], [1, 2])
    """
    if isinstance(value, Mapping):
        if name not in value:
            msg = f"{key}: no entry for optimizer {name!r}; the dict has {sorted(value)}"
            raise MappingKeyError(msg)
        value = value[name]
    if isinstance(value, (int, float)):
        return [value] * n_groups
    if len(value) != n_groups:
        msg = f"{key}: expected {n_groups} values for optimizer {name!r} (one per param group), got {len(value)}"
        raise ScheduleConfigError(msg)
    return list(value)


Policy = Fixed | Step | Exp | Poly | Inv | CosineAnnealing | LinearAnnealing | FlatCosineAnnealing | \
    CosineRestart | Cyclic | OneCycle | OneCycleMomentum
