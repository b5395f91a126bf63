"""The momentum updater: mmcv 1.7.2's ``MomentumUpdaterHook`` family from an unchanged ``momentum_config``.

It writes ``momentum`` for SGD-like param groups and ``betas[0]`` for Adam-like ones, at the
same points as the LR updater (see :mod:`fsm_trainer.hooks.lr_updater`); the base value is
kept in the group as ``initial_momentum``, as mmcv does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fsm_trainer.context import RunContext
from fsm_trainer.errors import HookError
from fsm_trainer.hook import Hook
from fsm_trainer.hooks.lr_updater import Setter, schedule_hook
from fsm_trainer.priority import Priority
from fsm_trainer.schedules import OneCycleMomentum, Schedule, build_momentum_schedule


def set_momentum(group: dict[str, Any], value: float) -> None:
    """Write a momentum into an SGD-like param group."""
    group["momentum"] = value


def set_beta1(group: dict[str, Any], value: float) -> None:
    """Write a momentum into an Adam-like param group's ``betas[0]``."""
    group["betas"] = (value, group["betas"][1])


def _momentum_setter(group: dict[str, Any]) -> Setter:
    # mmcv prefers 'momentum' when a group has both.
    if "momentum" in group:
        return set_momentum
    if "betas" in group:
        return set_beta1
    keys = sorted(k for k in group if k != "params")
    msg = f"momentum_config needs param groups with 'momentum' (SGD-like) or 'betas' (Adam-like); a group has {keys}"
    raise HookError(msg)


def _momentum_bases(schedule: Schedule, named: list[tuple[str, Any]]) -> list[Any]:
    bases: list[Any] = []
    p = schedule.policy
    for opt_name, opt in named:
        if isinstance(p, OneCycleMomentum):
            # mmcv's OneCycle cycles between per-group (base, max) and starts the run at max.
            pairs = p.base_values(len(opt.param_groups), opt_name)
            for g, (_, hi) in zip(opt.param_groups, pairs, strict=True):
                _momentum_setter(g)(g, hi)
            bases.extend(pairs)
            continue
        for g in opt.param_groups:
            current = g["momentum"] if "momentum" in g else g["betas"][0]
            bases.append(g.setdefault("initial_momentum", current))
    return bases


def momentum_updater(
    optimizer: Any = None, /, *, name: str | None = None, priority: int | str = Priority.HIGH,
    **momentum_config: Any,
) -> Callable[[RunContext], Hook]:
    """mmcv's momentum updater hook for ``momentum_config``, given unchanged.

    Args:
        optimizer: the optimizer or dict of optimizers to drive; ``None`` (default) for the
            run's ``optimizer``.
        name: the hook's name (default: mmcv's class name, e.g. ``CyclicMomentumUpdaterHook``).
        priority: mmcv registers it at HIGH (30).
        **momentum_config: see :func:`fsm_trainer.schedules.build_momentum_schedule`.

    Returns:
        A hook factory for :func:`fsm_trainer.run`.

    >>> factory = momentum_updater(policy="cyclic", target_ratio=(0.85 / 0.95, 1), cyclic_times=1)
    >>> callable(factory)
    True
    """
    schedule = build_momentum_schedule(**momentum_config)
    return schedule_hook(
        schedule, optimizer, name=name or f"{schedule.policy_name}MomentumUpdaterHook", priority=priority,
        init_bases=_momentum_bases, setter_for=_momentum_setter,
    )


__all__ = ["momentum_updater", "set_beta1", "set_momentum"]
