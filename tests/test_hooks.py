"""Hooks: priorities, ordering, composition, reachability checks."""

from __future__ import annotations

import attrs
import pytest
import toolz
from hypothesis import given
from hypothesis import strategies as st

from fsm_trainer import Hook, HookError, Priority, TrainState, UnreachableHookWarning, compile_workflow, compose_hooks
from fsm_trainer.hook import compile_stage, compose, reachable_points
from fsm_trainer.priority import get_priority

EPOCH = compile_workflow([("train", 1), ("val", 1)], max_epochs=1)
ITER = compile_workflow([("train", 5), ("val", 1)], max_iters=10)


def tagger(tag, log):
    def fn(s):
        log.append(tag)
        return s

    return fn


@pytest.mark.parametrize(("name", "value"), [
    ("HIGHEST", 0), ("VERY_HIGH", 10), ("HIGH", 30), ("ABOVE_NORMAL", 40), ("NORMAL", 50),
    ("BELOW_NORMAL", 60), ("LOW", 70), ("VERY_LOW", 90), ("LOWEST", 100),
])
def test_priority_names_have_mmcv_values(name, value):
    """Every mmcv level name maps to mmcv's value, in any case."""
    assert get_priority(name) == get_priority(name.lower()) == get_priority(Priority[name]) == value


@pytest.mark.parametrize("bad", ["URGENT", -1, 101, True, 3.5, None])
def test_bad_priorities_are_rejected(bad):
    """Unknown names, out-of-range ints and other types raise HookError."""
    with pytest.raises(HookError):
        Hook("h", bad, {})


def test_unknown_point_is_rejected():
    """A hook on a point mmcv does not have raises HookError listing the allowed points."""
    with pytest.raises(HookError, match=r"unknown hook point 'after_step'.*before_run"):
        Hook("h", "NORMAL", {"after_step": lambda s: s})


def test_non_callable_is_rejected():
    """A hook function must be callable."""
    with pytest.raises(HookError, match="not callable"):
        Hook("h", "NORMAL", {"after_run": 3})


@given(st.lists(st.integers(0, 100), min_size=1, max_size=12))
def test_order_is_priority_then_registration(prios):
    """Lower priority runs first; equal priorities run in registration order (stable sort)."""
    log: list[int] = []
    hooks = [Hook(f"h{i}", p, {"after_run": tagger(i, log)}) for i, p in enumerate(prios)]
    composed = compose_hooks(hooks, EPOCH)
    composed.fns["after_run"](TrainState())
    assert log == sorted(range(len(prios)), key=lambda i: (prios[i], i))


def test_generic_epoch_points_forward_like_mmcv():
    """before_epoch runs at both train and val epoch starts, unless the hook has the specific point."""
    log: list[str] = []
    generic = Hook("g", "NORMAL", {"before_epoch": tagger("g", log)})
    both = Hook("b", "NORMAL", {"before_epoch": tagger("b-generic", log), "before_train_epoch": tagger("b-train", log)})
    c = compose_hooks([generic, both], EPOCH)
    c.fns["before_train_epoch"](TrainState())
    c.fns["before_val_epoch"](TrainState())
    assert log == ["g", "b-train", "g", "b-generic"]


def test_empty_points_cost_nothing():
    """A call site no hook uses has no function at all (the loop skips it)."""
    c = compose_hooks([Hook("h", "NORMAL", {"after_run": lambda s: s})], EPOCH)
    assert c.fns["before_train_iter"] is None and c.fns["after_run"] is not None


def test_unreachable_point_warns_and_strict_raises():
    """An epoch point in an iter-based table is reported: a warning, or an error with strict."""
    h = Hook("ema", "NORMAL", {"after_train_epoch": lambda s: s})
    with pytest.warns(UnreachableHookWarning, match="'ema'.*'after_train_epoch'.*iter-based"):
        compose_hooks([h], ITER)
    with pytest.raises(HookError, match="'ema'"):
        compose_hooks([h], ITER, strict=True)
    train_only = compile_workflow([("train", 1)], max_epochs=1)
    with pytest.warns(UnreachableHookWarning, match="after_val_epoch"):
        compose_hooks([Hook("v", "NORMAL", {"after_val_epoch": lambda s: s})], train_only)


def test_reachable_points():
    """Iter tables reach the generic epoch points only; epoch tables reach each mode's points."""
    assert "after_train_epoch" not in reachable_points(ITER)
    assert {"before_epoch", "after_epoch", "after_val_iter"} <= reachable_points(ITER)
    assert "before_val_epoch" not in reachable_points(compile_workflow([("train", 1)], max_epochs=1))


def test_duplicate_names_and_non_hooks_are_rejected():
    """Hook names are unique and every item must be a Hook."""
    with pytest.raises(HookError, match="two hooks"):
        compose_hooks([Hook("a"), Hook("a")], EPOCH)
    with pytest.raises(HookError, match=r"hooks\[0\]"):
        compose_hooks([lambda s: s], EPOCH)


def test_hook_returning_none_is_named():
    """A hook that forgets to return its state gets a TypeError naming it and the point."""
    c = compose_hooks([Hook("ok", "HIGH", {"after_run": lambda s: s}),
                       Hook("forgetful", "LOW", {"after_run": lambda s: None})], EPOCH)
    with pytest.raises(TypeError, match="hook 'forgetful' returned NoneType at 'after_run'"):
        c.fns["after_run"](TrainState())


@given(st.lists(st.integers(0, 5), min_size=1, max_size=6))
def test_compiled_stage_equals_toolz_compose_left(incs):
    """A compiled stage computes the same state as toolz.compose_left over the same functions."""
    def affine(k):
        return lambda s: attrs.evolve(s, iter=s.iter * 2 + k)

    fns = tuple(affine(k) for k in incs)
    hooks = tuple(Hook(f"h{i}") for i in range(len(fns)))
    s = TrainState(iter=1)
    assert compile_stage("after_run", hooks, fns)(s) == toolz.compose_left(*fns)(s) == compose(*fns)(s)


def test_order_prints_like_mmcv():
    """The composed order prints per point, with the priority names, like mmcv's start-of-run log."""
    c = compose_hooks([Hook("Logger", "VERY_LOW", {"after_train_iter": lambda s: s}),
                       Hook("Opt", "ABOVE_NORMAL", {"after_train_iter": lambda s: s}),
                       Hook("Custom", 45, {"after_train_iter": lambda s: s})], EPOCH)
    text = str(c)
    assert text.splitlines()[:4] == ["after_train_iter:", "(ABOVE_NORMAL) Opt", "(45          ) Custom",
                                     "(VERY_LOW    ) Logger"]


def test_generated_stage_shows_its_source_in_tracebacks():
    """A traceback through a composed stage names the stage and shows the generated line."""
    import traceback

    from fsm_trainer.hook import compile_stage

    def boom(s):
        raise RuntimeError("boom")

    h = Hook("Boom", on={"after_train_iter": boom})
    stage = compile_stage("after_train_iter", (h,), (boom,))
    try:
        stage(TrainState())
    except RuntimeError as exc:
        text = "".join(traceback.format_exception(exc))
    assert "<fsm_trainer stage after_train_iter" in text
    assert "s = f0(s)" in text
    assert 'File "<string>"' not in text


def test_hook_factories_stay_functions_after_their_modules_are_imported():
    """Importing a hook's module directly does not replace the package's factory by the module."""
    import importlib
    import pkgutil

    import fsm_trainer.hooks as hooks

    for info in pkgutil.iter_modules(hooks.__path__):
        importlib.import_module(f"fsm_trainer.hooks.{info.name}")
    for name in hooks.__all__:
        value = getattr(hooks, name)
        assert callable(value) and not isinstance(value, type(hooks)), name
