"""The counter rules (fsm_trainer.counters) against the loop that runs them positionally.

``reference`` restates a run's hook points with the named rules only (``at_batch``,
``iteration_done``, ``epoch_done``, ``transition``); the generated unit loops of
:mod:`fsm_trainer.loop`, through a real :func:`fsm_trainer.run` with hooks at any subset of
points (each subset picks other specialisations) and through the dry run, must give the same
states at every point.
"""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import workflows

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.counters import at_batch, epoch_done, iteration_done, resume_position
from fsm_trainer.hook import Hook
from fsm_trainer.priority import Priority
from fsm_trainer.simulate import simulate
from fsm_trainer.transitions import END, START, transition


def reference(table, lens):
    """Every (point, state) of a run, written with the named counter rules."""
    s = TrainState()
    yield "before_run", s
    if table.by == "iter":
        yield "before_epoch", s
    s = transition(table, s, "start")
    fetched = [0] * len(lens)
    passes = [0] * len(lens)
    while s.phase != END:
        j = s.phase
        mode = table.workflow[j][0]
        if table.by == "epoch":
            yield f"before_{mode}_epoch", s
            for i in range(lens[j]):
                s = at_batch(s, mode, i)
                yield f"before_{mode}_iter", s
                yield f"after_{mode}_iter", s
                last = s
                s = iteration_done(s)
            if lens[j]:
                s = attrs_evolve(s, inner_iter=last.inner_iter)  # an epoch ends on its last batch
            yield f"after_{mode}_epoch", s
            s = epoch_done(s)
        else:
            d0 = s.phase_done
            n = _run_length(table, s)
            for k in range(n):
                epoch = passes[j] if mode == "train" else None
                if fetched[j] == lens[j]:
                    fetched[j], passes[j] = 0, passes[j] + 1
                fetched[j] += 1
                s = at_batch(s, mode, s.inner_iter, epoch=epoch, phase_done=d0 + k)
                yield f"before_{mode}_iter", s
                yield f"after_{mode}_iter", s
                s = iteration_done(s)
        s = transition(table, s, "done")
    if table.by == "iter":
        yield "after_epoch", s
    yield "after_run", s


def attrs_evolve(s, **kw):
    import attrs

    return attrs.evolve(s, **kw)


def _run_length(table, s):
    from fsm_trainer.transitions import run_length

    return run_length(table, s)


def key(s):
    return (s.epoch, s.iter, s.inner_iter, s.mode, s.phase, s.phase_done, s.stop)


ALL_POINTS = ("before_run", "before_epoch", "before_train_epoch", "before_train_iter", "after_train_iter",
              "after_train_epoch", "before_val_epoch", "before_val_iter", "after_val_iter", "after_val_epoch",
              "after_epoch", "after_run")


def recording(points, trace):
    def rec(p):
        def f(s):
            trace.append((p, key(s)))
            return s
        return f
    return Hook("rec", Priority.NORMAL, {p: rec(p) for p in points})


class Lengths:
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


@settings(max_examples=60, deadline=None)
@given(wf=workflows(max_entries=3, max_count=3), by=st.sampled_from(["epoch", "iter"]),
       limit=st.integers(1, 5), lens=st.lists(st.integers(1, 3), min_size=3, max_size=3),
       subset=st.sets(st.sampled_from(["before_train_iter", "after_train_iter", "before_val_iter",
                                       "after_val_iter"])))
def test_loop_states_follow_the_named_rules(wf, by, limit, lens, subset):
    """run() with hooks at any subset of iteration points, and the dry run, equal the reference at every point."""
    table = compile_workflow(wf, **{f"max_{by}s": limit})
    lens = lens[: len(wf)]
    expected = [(p, key(s)) for p, s in reference(table, lens)]
    assert [(p, key(s)) for p, s in simulate(table, lens)] == expected
    points = set(ALL_POINTS) - {"before_train_iter", "after_train_iter", "before_val_iter", "after_val_iter"}
    points |= subset
    trace: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hooks on points this table never reaches
        run(TrainState(), table, data_loaders=[Lengths(n) for n in lens], hooks=[recording(points, trace)],
            train_step=lambda b: {}, val_step=lambda b: {})
    assert trace == [(p, k) for p, k in expected if p in points]


@pytest.mark.parametrize("by", ["epoch", "iter"])
def test_resume_position_is_where_the_loop_goes_next(by):
    """At every save point, resume_position is the position of the next unit or batch the loop starts."""
    table = compile_workflow([("train", 2), ("val", 1)], **({"max_epochs": 3} if by == "epoch" else {"max_iters": 5}))
    trace = list(simulate(table, [3, 2]))
    fields = ("iter", "inner_iter", "mode", "phase", "phase_done") + (("epoch",) if by == "epoch" else ())
    checked = 0
    for i, (p, s) in enumerate(trace):
        if p not in ("after_train_iter", "after_train_epoch", "after_val_epoch", "after_val_iter"):
            continue
        pos = resume_position(table, s, p)
        assert pos.stop is False and dict(pos.outputs) == {}
        if by == "epoch" and p == "after_val_iter":
            assert key(pos) == key(attrs_evolve(s, stop=False))  # a val epoch runs again from its start
            continue
        if pos.phase == END:
            assert trace[i + 1][0] in ("after_train_epoch", "after_epoch", "after_val_epoch", "after_run")
            continue
        starts = ("before_train_iter", "before_val_iter") if by == "iter" or p == "after_train_iter" else (
            "before_train_epoch", "before_val_epoch")
        q, nxt = next((q, t) for q, t in trace[i + 1:] if q in starts or q == "after_train_epoch")
        if q == "after_train_epoch":  # the epoch's last batch: nothing left but its end
            assert pos.inner_iter == s.inner_iter + 1 and pos.iter == nxt.iter
            continue
        assert [getattr(pos, f) for f in fields] == [getattr(nxt, f) for f in fields], (p, key(s))
        checked += 1
    assert checked >= 5


def test_resume_position_elsewhere_is_the_state_itself():
    table = compile_workflow([("train", 1)], max_epochs=2)
    s = TrainState(epoch=1, iter=3, inner_iter=2, mode="train", phase=0, stop=True, outputs={"loss": object()})
    pos = resume_position(table, s, "before_train_iter")
    assert (pos.epoch, pos.iter, pos.inner_iter, pos.stop, dict(pos.outputs)) == (1, 3, 2, False, {})
    assert resume_position(table, TrainState(), "after_train_iter").phase == START
