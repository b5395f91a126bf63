"""A dry run: the hook points a run would call, with their states, computed without torch.

:func:`simulate` follows the same table, transitions and counter rules as
:func:`fsm_trainer.run`, over loaders known only by their lengths, and yields
``(point, state)`` pairs. Tests check it against real runs; it is what a plan of a run
(which iterations validate, log or save) is computed from.

>>> from fsm_trainer.transitions import compile_workflow
>>> table = compile_workflow([("train", 1), ("val", 1)], max_epochs=1)
>>> [(p, s.mode, s.epoch, s.iter, s.inner_iter) for p, s in simulate(table, [2, 1])
...  if p.endswith("iter")]  # doctest: +NORMALIZE_WHITESPACE
[('before_train_iter', 'train', 0, 0, 0), ('after_train_iter', 'train', 0, 0, 0),
 ('before_train_iter', 'train', 0, 1, 1), ('after_train_iter', 'train', 0, 1, 1),
 ('before_val_iter', 'val', 1, 2, 0), ('after_val_iter', 'val', 1, 2, 0)]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs

from fsm_trainer.state import TrainState
from fsm_trainer.transitions import END, START, TransitionTable, run_length, transition


def simulate(
    table: TransitionTable, loader_lens: Sequence[int], state: TrainState | None = None
) -> Iterator[tuple[str, TrainState]]:
    """Yield every hook point of a run of ``table`` and the state a hook would see there.

    Args:
        table: the compiled workflow.
        loader_lens: the number of batches of each workflow entry's loader (> 0 for
            iter-based tables, whose loaders cycle).
        state: where to start (default: a new run).
    """
    if len(loader_lens) != len(table.workflow):
        msg = f"got {len(loader_lens)} loader lengths for {len(table.workflow)} workflow entries"
        raise ValueError(msg)
    s = TrainState() if state is None else state
    yield "before_run", s
    if table.by == "epoch":
        yield from _epoch(table, loader_lens, s)
    else:
        yield from _iter(table, loader_lens, s)


def _epoch(table: TransitionTable, lens: Sequence[int], s: TrainState) -> Iterator[tuple[str, TrainState]]:
    if s.phase == START:
        s = transition(table, s, "start")
    while s.phase != END:
        mode = table.workflow[s.phase][0]
        yield f"before_{mode}_epoch", s
        for i in range(lens[s.phase]):
            s = attrs.evolve(s, inner_iter=i)
            yield f"before_{mode}_iter", s
            yield f"after_{mode}_iter", s
            if mode == "train":
                s = attrs.evolve(s, iter=s.iter + 1)
        yield f"after_{mode}_epoch", s
        if mode == "train":
            s = attrs.evolve(s, epoch=s.epoch + 1)
        s = transition(table, s, "done")
    yield "after_run", s


def _iter(table: TransitionTable, lens: Sequence[int], s: TrainState) -> Iterator[tuple[str, TrainState]]:
    fetched = [0] * len(lens)  # batches drawn from each loader
    passes = [s.epoch if m == "train" else 0 for m, _ in table.workflow]
    yield "before_epoch", s
    if s.phase == START:
        s = transition(table, s, "start")
    while s.phase != END:
        j = s.phase
        mode = table.workflow[j][0]
        d0 = s.phase_done
        for k in range(run_length(table, s)):
            epoch = passes[j] if mode == "train" else s.epoch
            if fetched[j] == lens[j]:  # the loader wraps while fetching this batch
                fetched[j] = 0
                passes[j] += 1
            fetched[j] += 1
            s = attrs.evolve(s, epoch=epoch, phase_done=d0 + k)
            yield f"before_{mode}_iter", s
            yield f"after_{mode}_iter", s
            s = attrs.evolve(s, inner_iter=s.inner_iter + 1, iter=s.iter + (mode == "train"))
        s = transition(table, s, "done")
    yield "after_epoch", s
    yield "after_run", s
