"""See a schedule before training: its value at every train iteration, and a plot of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fsm_trainer.schedules import _policies as P
from fsm_trainer.schedules._schedule import (
    Kind,
    Schedule,
    ScheduleConfigError,
    build_lr_schedule,
    build_momentum_schedule,
)


def as_schedule(config: Schedule | Mapping[str, Any], kind: Kind = "lr") -> Schedule:
    """A :class:`Schedule` as given, or built from an mmcv config dict of ``kind``."""
    if isinstance(config, Schedule):
        return config
    build = build_lr_schedule if kind == "lr" else build_momentum_schedule
    return build(**config)


def default_base(schedule: Schedule, base: Any, *, group: int = 0, optimizer_name: str = "optimizer") -> Any:
    """``base`` if given, else the one the OneCycle policies derive from their own keys."""
    p = schedule.policy
    if isinstance(p, (P.OneCycle, P.OneCycleMomentum)):
        if base is not None:
            return base
        key = "max_lr" if isinstance(p, P.OneCycle) else "max_momentum"
        value = getattr(p, key)
        value = value.get(optimizer_name, value) if isinstance(value, Mapping) else value
        n = len(value) if isinstance(value, (list, tuple)) else group + 1
        return p.base_values(n, optimizer_name)[group]
    if base is None:
        what = "the initial lr" if schedule.kind == "lr" else "the initial momentum"
        msg = f"policy {schedule.policy_name!r} needs base ({what} of the param group)"
        raise ScheduleConfigError(msg)
    return base


def schedule_values(
    config: Schedule | Mapping[str, Any],
    base: Any = None,
    *,
    kind: Kind = "lr",
    by: Literal["epoch", "iter"] = "epoch",
    max_epochs: int | None = None,
    max_iters: int | None = None,
    epoch_len: int | None = None,
    group: int = 0,
    optimizer_name: str = "optimizer",
) -> list[float]:
    """The value mmcv 1.7.2 sets at each train iteration of a whole run, without a model.

    Args:
        config: an ``lr_config``/``momentum_config`` dict, or a built :class:`Schedule`.
        base: the param group's initial value (not needed by OneCycle, which derives it from
            ``max_lr``/``div_factor`` or ``base_momentum``/``max_momentum``).
        kind: ``"lr"`` or ``"momentum"`` (how a dict config is read).
        by: the runner: ``"epoch"`` (give ``max_epochs`` and ``epoch_len``) or ``"iter"``
            (give ``max_iters``).
        group, optimizer_name: which param group (and optimizer, for per-optimizer dicts) a
            OneCycle's per-group values are read for.

    Returns:
        One value per train iteration, ``max_epochs * epoch_len`` or ``max_iters`` of them.

    >>> schedule_values(dict(policy="step", step=[1]), 0.1, max_epochs=2, epoch_len=2)
    [0.1, 0.1, 0.010000000000000002, 0.010000000000000002]
    >>> schedule_values(dict(policy="poly", by_epoch=False, power=1.0), 1.0, by="iter", max_iters=4)
    [1.0, 0.75, 0.5, 0.25]
    """
    s = as_schedule(config, kind)
    if by == "epoch":
        if max_epochs is None or epoch_len is None:
            msg = "by='epoch' needs max_epochs and epoch_len"
            raise ScheduleConfigError(msg)
        max_iters = max_epochs * epoch_len
    elif max_iters is None:
        msg = "by='iter' needs max_iters"
        raise ScheduleConfigError(msg)
    s.check_run(by, max_epochs=max_epochs, max_iters=max_iters, epoch_len=epoch_len)
    b = default_base(s, base, group=group, optimizer_name=optimizer_name)
    if by == "epoch":
        assert epoch_len is not None
        return [
            s.value(b, epoch=i // epoch_len, iter=i, max_epochs=max_epochs, max_iters=max_iters, epoch_len=epoch_len)
            for i in range(max_iters)
        ]
    return [s.value(b, iter=i, max_iters=max_iters, epoch_len=epoch_len) for i in range(max_iters)]


def plot_schedule(
    config: Schedule | Mapping[str, Any], base: Any = None, *, ax: Any = None, label: str | None = None,
    **kwargs: Any,
) -> Any:
    """Plot :func:`schedule_values` against the iteration; returns the matplotlib ``Axes``.

    Takes the arguments of :func:`schedule_values`, plus ``ax`` (a new figure if ``None``) and
    ``label``. Needs matplotlib: ``pip install 'fsm-trainer[plot]'``.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        msg = "plot_schedule needs matplotlib: pip install 'fsm-trainer[plot]' (or pip install matplotlib)"
        raise ImportError(msg) from e
    values = schedule_values(config, base, **kwargs)
    if ax is None:
        _, ax = plt.subplots()
    kind = kwargs.get("kind", "lr")
    s = as_schedule(config, kind)
    ax.plot(range(len(values)), values, label=label or s.policy_name)
    ax.set_xlabel("train iteration")
    ax.set_ylabel(kind)
    return ax
