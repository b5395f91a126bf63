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

from fsm_trainer.errors import WorkflowError
from fsm_trainer.loop import Loop, lengths_as_loaders, no_step, record_points
from fsm_trainer.state import TrainState
from fsm_trainer.transitions import TransitionTable

_EPOCH_POINTS = ("before_run", "before_train_epoch", "before_train_iter", "after_train_iter", "after_train_epoch",
                 "before_val_epoch", "before_val_iter", "after_val_iter", "after_val_epoch", "after_run")
_ITER_POINTS = ("before_run", "before_epoch", "before_train_iter", "after_train_iter", "before_val_iter",
                "after_val_iter", "after_epoch", "after_run")


def simulate(
    table: TransitionTable, loader_lens: Sequence[int], state: TrainState | None = None
) -> Iterator[tuple[str, TrainState]]:
    """Yield every hook point of a run of ``table`` and the state a hook would see there.

    It is :class:`fsm_trainer.loop.Loop`, the loop :func:`fsm_trainer.run` drives, run with
    loaders of the given lengths, steps that do nothing and a recording hook at every point.

    Args:
        table: the compiled workflow.
        loader_lens: the number of batches of each workflow entry's loader (> 0 for
            iter-based tables, whose loaders cycle).
        state: where to start (default: a new run); a position inside an epoch-based train
            epoch continues that epoch, as a resumed run does.
    """
    if len(loader_lens) != len(table.workflow):
        msg = f"got {len(loader_lens)} loader lengths for {len(table.workflow)} workflow entries"
        raise WorkflowError(msg)
    if table.by == "iter" and any(n <= 0 for n in loader_lens):
        msg = f"an iter-based run's loaders cycle: every length must be > 0, got {list(loader_lens)}"
        raise WorkflowError(msg)
    trace: list[tuple[str, TrainState]] = []
    fns = record_points(_EPOCH_POINTS if table.by == "epoch" else _ITER_POINTS, trace)
    Loop(table, fns, lengths_as_loaders(loader_lens), {"train": no_step, "val": no_step}).run(
        TrainState() if state is None else state)
    return iter(trace)
