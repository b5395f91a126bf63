"""The workflow compiled into an explicit transition table, and the pure functions it drives.

Theory of operation
-------------------
A run moves through *nodes*: ``start`` (after ``before_run``), one node per workflow entry
(``train#0``, ``val#1``, ...) and ``end`` (before ``after_run``). Inside a node the runner
repeats *units* of work: a whole epoch in an epoch-based table, one iteration in an iter-based
table. When a unit finishes, the runner feeds the event ``done``; the table says where to go.

Rules (they reproduce mmcv 1.7.2's ``EpochBasedRunner.run`` and ``IterBasedRunner.run``):

1. The run goes on while ``progress < max``, where progress is ``epoch`` (epoch-based) or
   ``iter`` (iter-based). This is checked when the run starts and each time the workflow list
   wraps around.
2. A train entry never starts a unit once ``progress >= max``; it is skipped instead.
3. A val entry always runs all its units, even after the last train unit, and never moves
   ``progress``. So a workflow needs at least one train entry or it would never end.
4. An entry ``(mode, n)`` runs at most ``n`` units per visit, then control passes to the next
   entry, or wraps to the first.

The rules are expanded once, at compile time, into literal rows ``(source, event, guard,
target)``; a guard is a conjunction of conditions on ``done`` (units completed in this visit,
including the one that just ended) and on the progress counter. Rows are tried in order and
the first whose guard holds is taken. :func:`transition` is the only interpreter of the rows;
the printed table, the Mermaid diagram and the run all come from the same data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

from fsm_trainer.errors import NoTransition, WorkflowError
from fsm_trainer.state import TrainState

START = -1
"""``TrainState.phase`` before the first entry runs."""
END = -2
"""``TrainState.phase`` once the run has left the last entry."""

MODES = ("train", "val")
Event = Literal["start", "done", "stop"]


@attrs.frozen
class Condition:
    """One atomic test of a guard: ``lhs op value`` with ``lhs`` in done/epoch/iter."""

    lhs: Literal["done", "epoch", "iter"]
    op: Literal["<", ">="]
    value: int

    def holds(self, state: TrainState, done: int) -> bool:
        """Evaluate the condition for ``state`` with ``done`` units completed in this visit."""
        x = done if self.lhs == "done" else state.epoch if self.lhs == "epoch" else state.iter
        return x < self.value if self.op == "<" else x >= self.value

    def negated(self) -> Condition:
        """Return the complementary condition."""
        return Condition(self.lhs, ">=" if self.op == "<" else "<", self.value)

    def __str__(self) -> str:
        return f"{self.lhs} {self.op} {self.value}"


@attrs.frozen
class Row:
    """One transition: from ``source`` on ``event``, if every condition holds, go to ``target``."""

    source: int
    event: Event
    guard: tuple[Condition, ...]
    target: int
    repeat: bool = False
    """True for the row that runs another unit in the same visit (``done`` keeps counting);
    False for a row that enters ``target`` afresh (``done`` restarts at 0), even when
    ``target == source`` because the workflow wrapped around."""


@attrs.frozen
class TransitionTable:
    """An immutable, printable, comparable transition table.

    Build it with :func:`compile_workflow`; drive it with :func:`transition`.
    """

    by: Literal["epoch", "iter"]
    workflow: tuple[tuple[str, int], ...]
    max_epochs: int | None
    max_iters: int | None
    rows: tuple[Row, ...]

    @property
    def max_progress(self) -> int:
        """``max_epochs`` for an epoch-based table, ``max_iters`` for an iter-based one."""
        m = self.max_epochs if self.by == "epoch" else self.max_iters
        assert m is not None
        return m

    def node_name(self, node: int) -> str:
        """``start``, ``end`` or ``<mode>#<index>`` for a workflow entry."""
        if node == START:
            return "start"
        if node == END:
            return "end"
        return f"{self.workflow[node][0]}#{node}"

    def rows_from(self, source: int, event: Event) -> tuple[Row, ...]:
        """The rows leaving ``source`` on ``event``, in the order they are tried."""
        return tuple(r for r in self.rows if r.source == source and r.event == event)

    def __str__(self) -> str:
        limit = f"max_epochs={self.max_epochs}" if self.by == "epoch" else f"max_iters={self.max_iters}"
        wf = ", ".join(f"({m!r}, {n})" for m, n in self.workflow)
        unit = "epoch" if self.by == "epoch" else "iteration"
        lines = [
            f"TransitionTable(by={self.by!r}, {limit}, workflow=[{wf}])",
            f"  one unit = one {unit}; rows are tried in order, the first whose guard holds wins",
        ]
        cells = [
            (self.node_name(r.source), r.event,
             " and ".join(map(str, r.guard)) or "-", self.node_name(r.target),
             "repeat" if r.repeat else "end run" if r.target == END else "enter")
            for r in self.rows
        ]
        head = ("from", "event", "guard", "to", "action")
        widths = [max(len(c[i]) for c in [head, *cells]) for i in range(5)]
        for c in [head, *cells]:
            lines.append("  " + "  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip())
        return "\n".join(lines)

    def to_mermaid(self) -> str:
        """Return the table as a Mermaid ``stateDiagram-v2``.

        >>> print(compile_workflow([("train", 1)], max_epochs=2).to_mermaid())
        stateDiagram-v2
            [*] --> start: before_run
            start --> train_0: start [epoch < 2]
            start --> end_: start
            train_0 --> train_0: done [epoch < 2]
            train_0 --> end_: done
            end_ --> [*]: after_run
        """

        def ident(node: int) -> str:
            return "end_" if node == END else self.node_name(node).replace("#", "_")

        lines = ["stateDiagram-v2", "    [*] --> start: before_run"]
        for r in self.rows:
            guard = " and ".join(map(str, r.guard))
            label = f"{r.event} [{guard}]" if guard else r.event
            label += " (repeat)" if r.repeat else ""
            lines.append(f"    {ident(r.source)} --> {ident(r.target)}: {label}")
        lines.append("    end_ --> [*]: after_run")
        return "\n".join(lines)

    def reachable_modes(self) -> frozenset[str]:
        """The modes of the entries some row can enter."""
        return frozenset(self.workflow[r.target][0] for r in self.rows if r.target >= 0)


def _validate(workflow: object, max_epochs: object, max_iters: object) -> tuple[tuple[str, int], ...]:
    if (max_epochs is None) == (max_iters is None):
        msg = (
            "give exactly one of max_epochs (epoch-based run) or max_iters (iter-based run); "
            f"got max_epochs={max_epochs!r}, max_iters={max_iters!r}"
        )
        raise WorkflowError(msg)
    name, limit = ("max_epochs", max_epochs) if max_epochs is not None else ("max_iters", max_iters)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        msg = f"{name} must be an int >= 0, got {limit!r}"
        raise WorkflowError(msg)
    if isinstance(workflow, (str, bytes)) or not isinstance(workflow, Iterable):
        msg = f"workflow must be a list of (mode, count) pairs, got {workflow!r}"
        raise WorkflowError(msg)
    entries = list(workflow)
    if not entries:
        msg = "workflow is empty; give at least one ('train', n) entry"
        raise WorkflowError(msg)
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) != 2:
            msg = f"workflow[{i}] must be a (mode, count) pair, got {entry!r}"
            raise WorkflowError(msg)
        mode, count = entry
        if mode not in MODES:
            msg = f"workflow[{i}][0]: unknown mode {mode!r}; allowed: 'train', 'val'"
            raise WorkflowError(msg)
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            msg = f"workflow[{i}][1]: count must be a positive int, got {count!r}"
            raise WorkflowError(msg)
        out.append((mode, count))
    if not any(m == "train" for m, _ in out):
        msg = (
            f"workflow {out!r} has no 'train' entry: val never advances the counters, "
            "so the run would never end"
        )
        raise WorkflowError(msg)
    return tuple(out)


def _consistent(guard: tuple[Condition, ...]) -> bool:
    return not any(c.negated() in guard for c in guard)


def _dedupe(guard: tuple[Condition, ...]) -> tuple[Condition, ...]:
    return tuple(dict.fromkeys(guard))


def compile_workflow(
    workflow: Iterable[tuple[str, int]],
    *,
    max_epochs: int | None = None,
    max_iters: int | None = None,
) -> TransitionTable:
    """Compile an mmcv workflow into a :class:`TransitionTable`.

    Args:
        workflow: ``(mode, count)`` pairs, ``mode`` in ``'train'``/``'val'``, ``count`` > 0
            epochs (epoch-based) or iterations (iter-based).
        max_epochs: the number of train epochs; makes the table epoch-based.
        max_iters: the number of train iterations; makes the table iter-based.

    Raises:
        WorkflowError: on an empty workflow, an unknown mode, a non-positive count, no train
            entry, or not exactly one of the two maxima.

    >>> print(compile_workflow([("train", 2), ("val", 1)], max_epochs=3))
    TransitionTable(by='epoch', max_epochs=3, workflow=[('train', 2), ('val', 1)])
      one unit = one epoch; rows are tried in order, the first whose guard holds wins
      from     event  guard                   to       action
      start    start  epoch < 3               train#0  enter
      start    start  -                       end      end run
      train#0  done   done < 2 and epoch < 3  train#0  repeat
      train#0  done   -                       val#1    enter
      val#1    done   epoch < 3               train#0  enter
      val#1    done   -                       end      end run
    """
    wf = _validate(workflow, max_epochs, max_iters)
    by: Literal["epoch", "iter"] = "epoch" if max_epochs is not None else "iter"
    limit = max_epochs if max_epochs is not None else max_iters
    assert limit is not None
    lhs: Literal["epoch", "iter"] = "epoch" if by == "epoch" else "iter"
    go_on = Condition(lhs, "<", limit)
    finished = go_on.negated()

    def enter(j: int, guard: tuple[Condition, ...]) -> list[tuple[tuple[Condition, ...], int]]:
        # Rows for "control reaches entry j" (j == len(wf) means the list wrapped around).
        if not _consistent(guard):
            return []
        if j == len(wf):  # rule 1: the while-condition of the outer loop
            return [*enter(0, (*guard, go_on)), ((*guard, finished), END)]
        if wf[j][0] == "train":  # rule 2: a train entry is skipped once progress >= max
            return [((*guard, go_on), j), *enter(j + 1, (*guard, finished))]
        return [(guard, j)]  # rule 3: val always runs

    def rows_for(
        source: int, event: Event, alts: list[tuple[tuple[Condition, ...], int]], repeat: Row | None = None
    ) -> list[Row]:
        rows: list[Row] = [] if repeat is None else [repeat]
        for guard, target in alts:
            if not _consistent(guard):
                continue
            rows.append(Row(source, event, _dedupe(guard), target))
        return _simplify(rows)

    rows: list[Row] = rows_for(START, "start", enter(len(wf), ()))
    for j, (mode, count) in enumerate(wf):
        repeat = None
        if count > 1:  # rule 4: repeat the entry while it has units left
            stay = Condition("done", "<", count)
            repeat = Row(j, "done", (stay, go_on) if mode == "train" else (stay,), j, repeat=True)
        rows.extend(rows_for(j, "done", enter(j + 1, ()), repeat))
    return TransitionTable(by, wf, max_epochs, max_iters, tuple(rows))


def _simplify(rows: list[Row]) -> list[Row]:
    """Drop conditions that earlier rows already decided, and rows that can never be taken.

    Rows are tried in order. If an earlier row has guard ``g + (not c,)`` and this row has
    ``g + (c,)``, reaching this row with ``g`` true means ``not c`` failed, so ``c`` holds and
    can be dropped. A row whose guard equals an earlier row's guard is never taken.
    """
    out: list[Row] = []
    for row in rows:
        guard = row.guard
        while guard and any(r.guard == (*guard[:-1], guard[-1].negated()) for r in out):
            guard = guard[:-1]
        if any(r.guard == guard for r in out):
            continue
        out.append(Row(row.source, row.event, guard, row.target, row.repeat))
    return out


def transition(table: TransitionTable, state: TrainState, event: Event) -> TrainState:
    """Return the state after ``event`` at ``state``'s node: the pure step of the machine.

    ``start`` is fed once, at node ``start``; ``done`` when a unit of the current entry has
    finished (the caller has already advanced ``epoch``/``iter``); ``stop`` from anywhere leads
    to ``end``. Entering an entry sets ``mode``, ``phase`` and resets ``phase_done`` and
    ``inner_iter``; staying in it counts the unit in ``phase_done``. Nothing else changes.

    Raises:
        NoTransition: when the event is not allowed at the state's node.

    >>> t = compile_workflow([("train", 2), ("val", 1)], max_epochs=3)
    >>> s = transition(t, TrainState(), "start")
    >>> (s.mode, s.phase, s.phase_done)
    ('train', 0, 0)
    >>> s = transition(t, attrs.evolve(s, epoch=1), "done")
    >>> (s.mode, s.phase, s.phase_done)
    ('train', 0, 1)
    >>> s = transition(t, attrs.evolve(s, epoch=2), "done")
    >>> (s.mode, s.phase, s.phase_done)
    ('val', 1, 0)
    """
    if event == "stop":
        return attrs.evolve(state, phase=END, phase_done=0)
    if (event == "start") != (state.phase == START) or state.phase == END:
        msg = f"event {event!r} is not allowed at node {table.node_name(state.phase)!r}"
        raise NoTransition(msg)
    done = state.phase_done + 1 if event == "done" else 0
    for row in table.rows_from(state.phase, event):
        if all(c.holds(state, done) for c in row.guard):
            if row.target == END:
                return attrs.evolve(state, phase=END, phase_done=0)
            if row.repeat:
                # A new epoch starts its batches at 0; an iter-based segment goes on counting.
                inner = 0 if table.by == "epoch" else state.inner_iter
                return attrs.evolve(state, phase_done=done, inner_iter=inner)
            return attrs.evolve(
                state, mode=table.workflow[row.target][0], phase=row.target, phase_done=0, inner_iter=0
            )
    msg = f"no row of the table matches node {table.node_name(state.phase)!r} on {event!r}"
    raise NoTransition(msg)


def run_length(table: TransitionTable, state: TrainState) -> int:
    """Units the current entry will run, from ``state``, before the table sends control elsewhere.

    It is the length of the self-loop that :func:`transition` would follow one ``done`` at a
    time, computed in closed form so an iter-based runner consults the table once per segment
    instead of once per iteration (a property test checks the two agree).

    >>> t = compile_workflow([("train", 1000), ("val", 100)], max_iters=2500)
    >>> run_length(t, TrainState(iter=2000, mode="train", phase=0))
    500
    """
    mode, count = table.workflow[state.phase]
    left = count - state.phase_done
    if mode == "val":
        return left
    progress = state.epoch if table.by == "epoch" else state.iter
    return max(0, min(left, table.max_progress - progress))


def last_entry(table: TransitionTable) -> TrainState | None:
    """Where a complete run of ``table`` was right before its final ``done`` led to ``end``.

    Counters as the run left them (``epoch``/``iter``; iter-based, ``epoch`` is left at 0),
    ``phase``/``phase_done``/``inner_iter`` of the entry that finished last. ``None`` when the
    run never enters an entry. A torch-free dry run through the table, one segment at a time.

    >>> t = compile_workflow([("train", 2), ("val", 1)], max_epochs=3)
    >>> s = last_entry(t)
    >>> (s.epoch, s.mode, s.phase_done)  # mmcv validates after the last train epoch too
    (3, 'val', 0)
    """
    s = transition(table, TrainState(), "start")
    prev = None
    while s.phase != END:
        n = run_length(table, s)
        if n == 0:
            prev = s
            s = transition(table, s, "done")
            continue
        train = table.workflow[s.phase][0] == "train"
        if table.by == "epoch":
            s = attrs.evolve(s, epoch=s.epoch + n if train else s.epoch, phase_done=s.phase_done + n - 1)
        else:
            s = attrs.evolve(s, iter=s.iter + n if train else s.iter, inner_iter=s.inner_iter + n,
                             phase_done=s.phase_done + n - 1)
        prev = s
        s = transition(table, s, "done")
    return prev


def continue_finished(saved: TransitionTable, table: TransitionTable, state: TrainState) -> TrainState:
    """The position from which ``table`` continues a run of ``saved`` that reached ``end`` at ``state``.

    A run extended after it finished (a larger ``max_epochs``/``max_iters``) goes on where the
    finished run's last entry was, as if the table had been ``table`` all along: the last
    entry's ``done`` is taken again under ``table``. A state that is not at ``end``, or whose
    counters are not those of a complete run of ``saved`` (it was stopped early), is returned
    unchanged.

    >>> old = compile_workflow([("train", 1)], max_epochs=2)
    >>> new = compile_workflow([("train", 1)], max_epochs=4)
    >>> s = continue_finished(old, new, TrainState(epoch=2, mode="train", phase=END))
    >>> (s.epoch, s.mode, s.phase, s.phase_done)
    (2, 'train', 0, 0)
    """
    if state.phase != END or saved.by != table.by or saved.workflow != table.workflow:
        return state
    last = last_entry(saved)
    if last is None:
        return state
    progress = (state.epoch, last.epoch) if saved.by == "epoch" else (state.iter, last.iter)
    if progress[0] != progress[1]:
        return state
    at = attrs.evolve(state, mode=last.mode, phase=last.phase, phase_done=last.phase_done,
                      inner_iter=last.inner_iter if saved.by == "iter" else state.inner_iter, stop=False)
    return transition(table, at, "done")
