"""Hooks: named, prioritised ``TrainState -> TrainState`` functions, composed once per point.

A :class:`Hook` maps hook points to functions. :func:`compose_hooks` sorts the hooks by
priority (ties keep registration order, as mmcv's ``register_hook`` does), checks every point
against the transition table, and builds one composed function per *call site* of the
runner, or ``None`` for a site no hook uses, so the loop skips it at no cost.

Generic points follow mmcv's forwarding: in an epoch-based table a hook's ``before_epoch``
function runs at ``before_train_epoch`` and ``before_val_epoch`` unless the hook also gives a
function for that specific point (likewise ``after_epoch``). In an iter-based table,
``before_epoch``/``after_epoch`` are called once, right after ``before_run`` and right before
``after_run``, and the train/val epoch points do not exist.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import toolz

from fsm_trainer._codegen import define
from fsm_trainer.errors import HookError
from fsm_trainer.priority import Priority, get_priority
from fsm_trainer.state import TrainState
from fsm_trainer.transitions import TransitionTable

HookFn = Callable[[TrainState], TrainState]

POINTS = (
    "before_run", "after_run",
    "before_epoch", "after_epoch",
    "before_train_epoch", "after_train_epoch",
    "before_val_epoch", "after_val_epoch",
    "before_train_iter", "after_train_iter",
    "before_val_iter", "after_val_iter",
)
"""Every hook point, as named by mmcv 1.7.2."""

_GENERIC = {
    "before_train_epoch": "before_epoch", "before_val_epoch": "before_epoch",
    "after_train_epoch": "after_epoch", "after_val_epoch": "after_epoch",
}

EPOCH_SITES = (
    "before_run", "before_train_epoch", "before_train_iter", "after_train_iter",
    "after_train_epoch", "before_val_epoch", "before_val_iter", "after_val_iter",
    "after_val_epoch", "after_run",
)
"""The points an epoch-based runner calls, in mmcv's listing order."""
ITER_SITES = (
    "before_run", "before_epoch", "before_train_iter", "after_train_iter",
    "before_val_iter", "after_val_iter", "after_epoch", "after_run",
)
"""The points an iter-based runner calls."""


class UnreachableHookWarning(UserWarning):
    """A hook was given a function for a point the transition table never reaches."""


def _check_on(_: Any, __: Any, on: Mapping[str, HookFn]) -> None:
    if not isinstance(on, Mapping):
        msg = f"'on' must map hook points to functions, got {type(on).__name__}"
        raise HookError(msg)
    for point, fn in on.items():
        if point not in POINTS:
            msg = f"unknown hook point {point!r}; allowed: {', '.join(POINTS)}"
            raise HookError(msg)
        if not callable(fn):
            msg = f"the function for {point!r} is not callable: {fn!r}"
            raise HookError(msg)


@attrs.frozen
class Hook:
    """A named set of functions, one per hook point, with a priority.

    Attributes:
        name: shown in the hook order and in error messages.
        priority: an int in [0, 100] or an mmcv level name (``"NORMAL"`` = 50). Lower runs
            first; equal priorities run in registration order.
        on: hook point -> ``TrainState -> TrainState``. A function may return its input
            unchanged; effects on torch objects go through the function's closure.
        state_dict: optional ``() -> dict`` of the hook's own state, saved in checkpoints.
        load_state_dict: optional ``dict -> None`` restoring it.

    >>> h = Hook("double", priority="high", on={"after_train_iter": lambda s: s})
    >>> h.priority
    30
    """

    name: str
    priority: int = attrs.field(default=int(Priority.NORMAL), converter=get_priority)
    on: Mapping[str, HookFn] = attrs.field(factory=dict, validator=_check_on)
    state_dict: Callable[[], dict[str, Any]] | None = None
    load_state_dict: Callable[[dict[str, Any]], None] | None = None


def reachable_points(table: TransitionTable) -> frozenset[str]:
    """The hook points a run of ``table`` can call (generic names included)."""
    modes = table.reachable_modes()
    if table.by == "iter":
        points = {"before_run", "after_run", "before_epoch", "after_epoch"}
        points |= {f"{w}_{m}_iter" for m in modes for w in ("before", "after")}
        return frozenset(points)
    points = {"before_run", "after_run"}
    for m in modes:
        points |= {f"before_{m}_epoch", f"after_{m}_epoch", f"before_{m}_iter", f"after_{m}_iter"}
    if modes:
        points |= {"before_epoch", "after_epoch"}
    return frozenset(points)


def reachable_only(on: Mapping[str, HookFn], table: TransitionTable) -> dict[str, HookFn]:
    """The entries of ``on`` whose point ``table`` can reach.

    Hooks written for any workflow (a timer, a logger) use it so they do not warn about,
    or list themselves at, points a particular run never calls.
    """
    points = reachable_points(table)
    return {p: f for p, f in on.items() if p in points}


def resolve_by_epoch(name: str, by_epoch: bool | None, table: TransitionTable) -> bool:
    """A hook's ``by_epoch``: the table's kind when ``None``; ``True`` is refused in an iter-based run.

    Raises:
        HookError: ``by_epoch=True`` with an iter-based table, whose epoch points never fire.
    """
    per_epoch = table.by == "epoch" if by_epoch is None else by_epoch
    if per_epoch and table.by == "iter":
        msg = f"{name}: by_epoch=True needs an epoch-based table; this run is iter-based"
        raise HookError(msg)
    return per_epoch


def _fn_at(hook: Hook, site: str, by: str) -> HookFn | None:
    fn = hook.on.get(site)
    if fn is None and by == "epoch":
        generic = _GENERIC.get(site)
        if generic is not None:
            fn = hook.on.get(generic)
    return fn


@attrs.frozen
class ComposedHooks:
    """The hooks of a run, sorted and composed once per call site.

    ``order[site]`` lists the hooks called at ``site`` in call order and ``fns[site]`` is their
    composition (:func:`compile_stage`), or ``None`` when no hook uses the site. ``str()`` gives the hook order like
    mmcv's log at the start of a run.
    """

    hooks: tuple[Hook, ...]
    order: Mapping[str, tuple[Hook, ...]]
    fns: Mapping[str, HookFn | None]

    def __str__(self) -> str:
        lines = []
        for site, hooks in self.order.items():
            if hooks:
                lines.append(f"{site}:")
                for h in hooks:
                    try:
                        level = Priority(h.priority).name
                    except ValueError:
                        level = str(h.priority)
                    lines.append(f"({level:<12}) {h.name}")
                lines.append(" -------------------- ")
        return "\n".join(lines)


def compose(*fns: HookFn) -> HookFn:
    """Compose state functions left to right into one (``toolz.compose_left``).

    Use it to give one point of a hook several functions:

    >>> inc = lambda s: s + 1
    >>> dbl = lambda s: s * 2
    >>> compose(inc, dbl)(3)
    8
    """
    composed: HookFn = toolz.compose_left(*fns)
    return composed


def compile_stage(site: str, hooks: tuple[Hook, ...], fns: tuple[HookFn, ...]) -> HookFn | None:
    """One function running ``fns`` in order at ``site``, or ``None`` when there are none.

    The result equals ``toolz.compose_left(*fns)`` on valid hooks (a test checks it), but is
    generated as straight-line code, about twice as fast on the per-iteration path, and it
    checks each hook's return value, so a hook that forgets to return its state is named:

    >>> h = Hook("forgetful", on={"after_train_iter": lambda s: None})
    >>> stage = compile_stage("after_train_iter", (h,), (h.on["after_train_iter"],))
    >>> stage(TrainState())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: hook 'forgetful' returned NoneType at 'after_train_iter' instead of a TrainState; ...
    """
    if not fns:
        return None

    def bad(i: int, got: object) -> TypeError:
        msg = (
            f"hook {hooks[i].name!r} returned {type(got).__name__} at {site!r} instead of a "
            "TrainState; a hook function must return its (possibly unchanged) state"
        )
        return TypeError(msg)

    env: dict[str, Any] = {"_cls": TrainState, "_bad": bad}
    lines = ["def stage(s):"]
    for i, fn in enumerate(fns):
        env[f"f{i}"] = fn
        lines.append(f"    s = f{i}(s)")
        lines.append(f"    if s.__class__ is not _cls: raise _bad({i}, s)")
    lines.append("    return s")
    stage: HookFn = define("stage", "\n".join(lines) + "\n", env, what=f"stage {site}")
    stage.__qualname__ = stage.__name__ = f"{site}[{', '.join(h.name for h in hooks)}]"
    return stage


def compose_hooks(
    hooks: Iterable[Hook], table: TransitionTable, *, strict: bool = False
) -> ComposedHooks:
    """Sort ``hooks`` by priority and compose them per call site of ``table``'s runner.

    Args:
        hooks: the hooks, in registration order.
        table: the transition table they will run with.
        strict: raise instead of warning when a hook uses a point the table never reaches.

    Raises:
        HookError: an item is not a :class:`Hook`, two hooks share a name, or (``strict``) a
            point is unreachable.
    """
    hooks = tuple(hooks)
    seen: set[str] = set()
    for i, h in enumerate(hooks):
        if not isinstance(h, Hook):
            msg = f"hooks[{i}] is not a Hook: {h!r}"
            raise HookError(msg)
        if h.name in seen:
            msg = f"two hooks are named {h.name!r}; hook names must be unique"
            raise HookError(msg)
        seen.add(h.name)
    ordered = tuple(h for _, h in sorted(enumerate(hooks), key=lambda p: (p[1].priority, p[0])))
    reachable = reachable_points(table)
    for h in ordered:
        for point in h.on:
            if point not in reachable:
                msg = (
                    f"hook {h.name!r} has a function for {point!r}, which this "
                    f"{table.by}-based table never reaches"
                )
                if strict:
                    raise HookError(msg)
                warnings.warn(msg, UnreachableHookWarning, stacklevel=2)
    sites = EPOCH_SITES if table.by == "epoch" else ITER_SITES
    order: dict[str, tuple[Hook, ...]] = {}
    fns: dict[str, HookFn | None] = {}
    for site in sites:
        pairs = [(h, f) for h in ordered if (f := _fn_at(h, site, table.by)) is not None]
        order[site] = tuple(h for h, _ in pairs)
        fns[site] = compile_stage(site, order[site], tuple(f for _, f in pairs))
    return ComposedHooks(ordered, order, fns)
