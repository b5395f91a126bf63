"""The LR updater: mmcv 1.7.2's ``LrUpdaterHook`` family from an unchanged ``lr_config``.

The values come from :mod:`fsm_trainer.schedules` (pure functions of the counters); this module
only decides *when* to write them into ``param_groups``, at the points mmcv writes them:

* ``before_run``: ``group.setdefault("initial_lr", group["lr"])``; that base survives resume.
* ``by_epoch=True`` (epoch-based runs only): the regular value at ``before_train_epoch``; with
  warmup, the warmed value at each ``before_train_iter`` up to the end of warmup.
* ``by_epoch=False``: the value at every ``before_train_iter``.

The same machinery drives the momentum updater (:mod:`fsm_trainer.hooks.momentum_updater`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fsm_trainer.context import RunContext
from fsm_trainer.errors import HookError
from fsm_trainer.hook import Hook
from fsm_trainer.priority import Priority
from fsm_trainer.schedules import OneCycle, Schedule, ScheduleConfigError, bind, build_lr_schedule
from fsm_trainer.state import TrainState

Setter = Callable[[dict[str, Any], float], None]


def _named_optimizers(optimizer: Any) -> list[tuple[str, Any]]:
    # mmcv names a lone optimizer by its class (OneCycle's per-optimizer dicts use that name).
    if isinstance(optimizer, dict):
        return list(optimizer.items())
    return [(type(optimizer).__name__, optimizer)]


def _first_train_len(ctx: RunContext) -> int | None:
    for j, (mode, _) in enumerate(ctx.table.workflow):
        if mode == "train":
            return ctx.loader_len(j)
    return None


def set_lr(group: dict[str, Any], value: float) -> None:
    """Write an LR into a param group."""
    group["lr"] = value


def schedule_hook(
    schedule: Schedule,
    optimizer: Any,
    *,
    name: str,
    priority: int | str,
    init_bases: Callable[[Schedule, list[tuple[str, Any]]], list[Any]],
    setter_for: Callable[[dict[str, Any]], Setter],
) -> Callable[[RunContext], Hook]:
    """A hook factory writing ``schedule``'s values into every param group of the optimizer(s).

    Args:
        schedule: a validated :class:`~fsm_trainer.schedules.Schedule`.
        optimizer: an optimizer, a dict of them, or ``None`` for the run's (``ctx.optimizer``).
        name, priority: of the hook.
        init_bases: ``(schedule, [(name, optimizer)]) -> bases`` run at ``before_run``: records
            each group's base value (in the group, for resume) and returns them in group order.
        setter_for: ``group -> setter(group, value)``; checked for every group in the factory.
    """

    def factory(ctx: RunContext) -> Hook:
        opt = optimizer if optimizer is not None else ctx.optimizer
        if opt is None or (isinstance(opt, dict) and not opt):
            msg = f"{name} needs an optimizer: pass it to {name}'s factory or run(..., optimizer=...)"
            raise HookError(msg)
        table = ctx.table
        max_epochs, max_iters = table.max_epochs, ctx.max_iters
        epoch_len = _first_train_len(ctx) if table.by == "epoch" else None
        schedule.check_run(table.by, max_epochs=max_epochs, max_iters=max_iters, epoch_len=epoch_len)
        named = _named_optimizers(opt)
        for _, o in named:  # refuse groups the hook cannot drive now, before any work
            for g in o.param_groups:
                setter_for(g)
        warm, by_epoch = schedule.warm, schedule.by_epoch
        # Constants of the run (its length, the train loader's length), so recomputable:
        # OneCycle and cyclic precompute their phases; with warmup_by_epoch the warmup length
        # is the first train loader's length times warmup_iters, as mmcv fixes it.
        value = bind(schedule.policy, max_epochs if by_epoch else max_iters)
        n_warm = schedule.warmup_length(epoch_len) if warm is not None else 0
        # The param groups are read when used: restoring an optimizer replaces its group dicts.
        if len(named) == 1:
            only = named[0][1]

            def groups() -> list[dict[str, Any]]:
                return only.param_groups  # type: ignore[no-any-return]
        else:

            def groups() -> list[dict[str, Any]]:
                return [g for _, o in named for g in o.param_groups]

        # (setter, base) per group, made at before_run from the groups as they are then (after a
        # resume: the restored ones, which carry initial_lr / initial_momentum).
        plan: list[tuple[Setter, Any]] = []

        def before_run(s: TrainState) -> TrainState:
            bases = init_bases(schedule, named)
            plan[:] = [(setter_for(g), b) for g, b in zip(groups(), bases, strict=True)]
            return s

        def put_all(values: list[float]) -> None:
            for (put, _), g, v in zip(plan, groups(), values, strict=True):
                put(g, v)

        def before_train_epoch(s: TrainState) -> TrainState:
            e = s.epoch
            put_all([value(b, e) for _, b in plan])
            return s

        def warmup_by_epoch_iter(s: TrainState) -> TrainState:
            # mmcv: the regular value was set at the epoch's start; warmup overrides it per
            # iteration, and the iteration that ends warmup restores it.
            i = s.iter
            if i > n_warm:
                return s
            e = s.epoch
            if i == n_warm:
                put_all([value(b, e) for _, b in plan])
            else:
                put_all([warm(value(b, e), i, n_warm) for _, b in plan])  # type: ignore[misc]
            return s

        def per_iter(s: TrainState) -> TrainState:
            i = s.iter
            if warm is not None and i < n_warm:
                for (put, b), g in zip(plan, groups(), strict=True):
                    put(g, warm(value(b, i), i, n_warm))
            else:
                for (put, b), g in zip(plan, groups(), strict=True):
                    put(g, value(b, i))
            return s

        on: dict[str, Callable[[TrainState], TrainState]] = {"before_run": before_run}
        if table.by == "epoch" and by_epoch:
            on["before_train_epoch"] = before_train_epoch
        if not by_epoch:
            on["before_train_iter"] = per_iter
        elif warm is not None:
            on["before_train_iter"] = warmup_by_epoch_iter
        return Hook(name, priority, on)

    return factory


def _lr_bases(schedule: Schedule, named: list[tuple[str, Any]]) -> list[Any]:
    bases: list[Any] = []
    p = schedule.policy
    for opt_name, opt in named:
        if isinstance(p, OneCycle):
            # mmcv's OneCycle starts from max_lr / div_factor, whatever the optimizer's lr.
            derived = p.base_values(len(opt.param_groups), opt_name)
            for g, b in zip(opt.param_groups, derived, strict=True):
                g.setdefault("initial_lr", b)
            bases.extend(derived)
        else:
            for g in opt.param_groups:
                bases.append(g.setdefault("initial_lr", g["lr"]))
    return bases


def _lr_setter(group: dict[str, Any]) -> Setter:
    if "lr" not in group:
        msg = f"a param group has no 'lr' (keys: {sorted(k for k in group if k != 'params')})"
        raise HookError(msg)
    return set_lr


def lr_updater(
    optimizer: Any = None, /, *, name: str | None = None, priority: int | str = Priority.VERY_HIGH,
    **lr_config: Any,
) -> Callable[[RunContext], Hook]:
    """mmcv's LR updater hook for ``lr_config``, given unchanged (``policy='step', step=[8, 11], ...``).

    Args:
        optimizer: the optimizer or dict of optimizers to drive; ``None`` (default) for the
            run's ``optimizer``.
        name: the hook's name (default: mmcv's class name, e.g. ``StepLrUpdaterHook``).
        priority: mmcv registers it at VERY_HIGH (10).
        **lr_config: mmcv 1.7.2's ``lr_config``; see :func:`fsm_trainer.schedules.build_lr_schedule`.

    Returns:
        A hook factory for :func:`fsm_trainer.run`.

    Raises:
        ScheduleConfigError: now for a bad config; when the run starts for a config the run
            cannot use (e.g. ``by_epoch=True`` in an iter-based run).

    >>> factory = lr_updater(policy="step", step=[8, 11], warmup="linear", warmup_iters=500)
    >>> callable(factory)
    True
    """
    schedule = build_lr_schedule(**lr_config)
    return schedule_hook(
        schedule, optimizer, name=name or f"{schedule.policy_name}LrUpdaterHook", priority=priority,
        init_bases=_lr_bases, setter_for=_lr_setter,
    )


__all__ = ["ScheduleConfigError", "lr_updater", "schedule_hook", "set_lr"]
