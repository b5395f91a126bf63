"""The transition table and its pure functions, tested without torch."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import workflows

from fsm_trainer import END, START, NoTransition, TrainState, WorkflowError, compile_workflow, run_length, transition
from fsm_trainer.serialize import table_from_json, table_to_json
from fsm_trainer.simulate import simulate


def mmcv_units(workflow, by, limit):
    """Reference: the (entry, mode) of every unit mmcv's nested run() loops execute."""
    progress, units = 0, []
    while progress < limit:
        for j, (mode, n) in enumerate(workflow):
            for _ in range(n):
                if mode == "train" and progress >= limit:
                    break
                units.append((j, mode))
                if mode == "train":
                    progress += 1
    return units


def table_units(table):
    """The units the table makes a runner execute, one ``done`` event at a time."""
    s = transition(table, TrainState(), "start")
    units = []
    while s.phase != END:
        mode = table.workflow[s.phase][0]
        units.append((s.phase, mode))
        if mode == "train":
            s = attrs.evolve(s, epoch=s.epoch + 1) if table.by == "epoch" else attrs.evolve(s, iter=s.iter + 1)
        s = transition(table, s, "done")
    return units


# --- single transitions -------------------------------------------------------------

def test_start_enters_first_entry():
    """'start' at node start enters entry 0 with mode set and counters reset."""
    t = compile_workflow([("train", 2), ("val", 1)], max_epochs=3)
    s = transition(t, TrainState(inner_iter=5), "start")
    assert (s.phase, s.mode, s.phase_done, s.inner_iter) == (0, "train", 0, 0)


def test_start_at_max_goes_to_end():
    """A run whose progress is already at the maximum ends without running anything."""
    t = compile_workflow([("train", 1)], max_epochs=2)
    assert transition(t, TrainState(epoch=2), "start").phase == END


def test_done_repeats_then_moves_on():
    """An entry (train, 2) repeats once, then hands over to the next entry."""
    t = compile_workflow([("train", 2), ("val", 1)], max_epochs=10)
    s = transition(t, TrainState(), "start")
    s = transition(t, attrs.evolve(s, epoch=1), "done")
    assert (s.phase, s.phase_done) == (0, 1)
    s = transition(t, attrs.evolve(s, epoch=2), "done")
    assert (s.phase, s.mode, s.phase_done) == (1, "val", 0)


def test_train_entry_breaks_at_max_but_val_runs():
    """Reaching max inside a train entry skips its remaining units; the val entry still runs."""
    t = compile_workflow([("train", 3), ("val", 1)], max_epochs=1)
    s = transition(t, TrainState(), "start")
    s = transition(t, attrs.evolve(s, epoch=1), "done")
    assert (s.phase, s.mode) == (1, "val")
    assert transition(t, s, "done").phase == END


def test_wrap_reenters_with_fresh_count():
    """A single-entry workflow that wraps enters the entry afresh (phase_done restarts at 0)."""
    t = compile_workflow([("train", 3)], max_iters=10)
    s = attrs.evolve(transition(t, TrainState(), "start"), phase_done=2, iter=3)
    s = transition(t, s, "done")
    assert (s.phase, s.phase_done) == (0, 0)


def test_iter_repeat_keeps_inner_iter_epoch_repeat_resets_it():
    """inner_iter counts on within an iter segment, and restarts with each new epoch."""
    ti = compile_workflow([("train", 3)], max_iters=10)
    te = compile_workflow([("train", 3)], max_epochs=10)
    s = TrainState(mode="train", phase=0, inner_iter=1, iter=1, epoch=1)
    assert transition(ti, s, "done").inner_iter == 1
    assert transition(te, s, "done").inner_iter == 0


def test_stop_goes_to_end_from_anywhere():
    """'stop' leads to END from any node."""
    t = compile_workflow([("train", 1)], max_epochs=3)
    assert transition(t, TrainState(phase=0, mode="train"), "stop").phase == END


@pytest.mark.parametrize(("state", "event"), [
    (TrainState(), "done"),
    (TrainState(phase=0, mode="train"), "start"),
    (TrainState(phase=END), "done"),
])
def test_illegal_events_raise_and_leave_state(state, event):
    """An event that is not allowed raises NoTransition; the input state is unchanged."""
    t = compile_workflow([("train", 1)], max_epochs=3)
    before = state
    with pytest.raises(NoTransition):
        transition(t, state, event)
    assert state == before


def test_run_length_examples():
    """run_length is the closed form of the self-loop: capped by count and by max."""
    t = compile_workflow([("train", 1000), ("val", 100)], max_iters=2500)
    assert run_length(t, TrainState(mode="train", phase=0)) == 1000
    assert run_length(t, TrainState(mode="train", phase=0, iter=2000)) == 500
    assert run_length(t, TrainState(mode="val", phase=1, iter=2500, phase_done=40)) == 60


# --- whole tables ------------------------------------------------------------------

def test_table_prints_rows():
    """The printed table lists every row with guard, target and action."""
    text = str(compile_workflow([("train", 1000), ("val", 100)], max_iters=10_000))
    assert "train#0  done   done < 1000 and iter < 10000  train#0  repeat" in text
    assert "val#1    done   iter < 10000                  train#0  enter" in text


def test_mermaid_has_every_row():
    """The Mermaid diagram has one edge per row plus entry and exit."""
    t = compile_workflow([("train", 2), ("val", 1)], max_epochs=12)
    mm = t.to_mermaid()
    assert mm.startswith("stateDiagram-v2")
    assert mm.count("-->") == len(t.rows) + 2
    assert "train_0 --> val_1: done" in mm


def test_tables_compare_and_serialize():
    """Tables are values: equal when compiled from the same input, and JSON round-trips."""
    a = compile_workflow([("train", 2), ("val", 1)], max_epochs=12)
    b = compile_workflow([("train", 2), ("val", 1)], max_epochs=12)
    assert a == b and hash(a) == hash(b)
    assert a != compile_workflow([("train", 2), ("val", 1)], max_epochs=13)
    assert table_from_json(table_to_json(a)) == a


@pytest.mark.parametrize(("workflow", "kw", "match"), [
    ([], {"max_epochs": 1}, "empty"),
    ([("test", 1)], {"max_epochs": 1}, r"workflow\[0\]\[0\]: unknown mode 'test'"),
    ([("train", 0)], {"max_epochs": 1}, r"workflow\[0\]\[1\]: count must be a positive int"),
    ([("train", -1)], {"max_iters": 1}, "positive"),
    ([("train", 1.5)], {"max_iters": 1}, "positive int"),
    ([("train", 1)], {}, "exactly one"),
    ([("train", 1)], {"max_epochs": 1, "max_iters": 1}, "exactly one"),
    ([("train", 1)], {"max_epochs": -1}, "max_epochs must be an int >= 0"),
    ([("val", 1)], {"max_epochs": 1}, "no 'train' entry"),
    ("train", {"max_epochs": 1}, "list of"),
    ([("train",)], {"max_epochs": 1}, r"workflow\[0\] must be a \(mode, count\) pair"),
])
def test_bad_workflows_are_rejected(workflow, kw, match):
    """Invalid workflows and maxima raise WorkflowError (a ValueError) naming the entry."""
    with pytest.raises(WorkflowError, match=match):
        compile_workflow(workflow, **kw)
    assert issubclass(WorkflowError, ValueError)


# --- properties --------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(wf=workflows(), by=st.sampled_from(["epoch", "iter"]), limit=st.integers(0, 12))
def test_table_follows_mmcv_loops(wf, by, limit):
    """For any workflow and maximum, the table runs exactly mmcv's sequence of units."""
    table = compile_workflow(wf, **{f"max_{by}s": limit})
    units = table_units(table)
    assert units == mmcv_units(wf, by, limit)
    assert sum(m == "train" for _, m in units) == limit


@settings(max_examples=200, deadline=None)
@given(wf=workflows(), by=st.sampled_from(["epoch", "iter"]), limit=st.integers(1, 12))
def test_run_length_matches_stepwise(wf, by, limit):
    """run_length equals the number of consecutive units of an entry when stepping by 'done'."""
    table = compile_workflow(wf, **{f"max_{by}s": limit})
    s = transition(table, TrainState(), "start")
    while s.phase != END:
        expected, visit = run_length(table, s), s
        n = 0
        while True:
            n += 1
            if table.workflow[s.phase][0] == "train":
                s = attrs.evolve(s, epoch=s.epoch + 1) if by == "epoch" else attrs.evolve(s, iter=s.iter + 1)
            nxt = transition(table, s, "done")
            if not (nxt.phase == visit.phase and nxt.phase_done == n):
                s = nxt
                break
            s = nxt
        assert n == expected


@settings(max_examples=100, deadline=None)
@given(wf=workflows(max_entries=3, max_count=3), by=st.sampled_from(["epoch", "iter"]),
       limit=st.integers(0, 6), lens=st.lists(st.integers(1, 3), min_size=3, max_size=3))
def test_simulated_counters_are_monotone(wf, by, limit, lens):
    """In a dry run, counters never decrease, each point's mode matches, and train work equals max."""
    table = compile_workflow(wf, **{f"max_{by}s": limit})
    trace = list(simulate(table, lens[: len(wf)]))
    assert trace[0][0] == "before_run" and trace[-1][0] == "after_run"
    iters = [s.iter for _, s in trace]
    epochs = [s.epoch for _, s in trace]
    assert iters == sorted(iters)
    if by == "epoch" or sum(m == "train" for m, _ in wf) == 1:
        # (iter-based: each train entry has its own loader and epoch shows the pass count of the
        # one that ran last, as in mmcv, so with two train entries it can go back)
        assert epochs == sorted(epochs)
    train_iters = sum(p == "after_train_iter" for p, _ in trace)
    if by == "iter":
        assert train_iters == limit
    else:
        first_train = next(j for j, (m, _) in enumerate(wf) if m == "train")
        assert sum(p == "after_train_epoch" for p, _ in trace) == limit
        if all(m != "train" or lens[j] == lens[first_train] for j, (m, _) in enumerate(wf)):
            assert train_iters == limit * lens[first_train]
    for p, s in trace:
        if p.endswith("_iter"):
            assert s.mode == p.split("_")[1]


def test_pure_modules_import_without_torch():
    """The functional core imports and runs with torch unavailable."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import fsm_trainer, fsm_trainer.transitions, fsm_trainer.hook, fsm_trainer.state, "
        "fsm_trainer.serialize, fsm_trainer.simulate, fsm_trainer.priority, fsm_trainer.logbuffer, "
        "fsm_trainer.data, fsm_trainer.context\n"
        "t = fsm_trainer.compile_workflow([('train', 1)], max_epochs=1)\n"
        "print(len(list(fsm_trainer.simulate.simulate(t, [2]))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "8"


def test_start_constant():
    """A fresh state sits at node START."""
    assert TrainState().phase == START
