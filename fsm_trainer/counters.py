"""The counter rules: how ``epoch``, ``iter``, ``inner_iter`` and ``phase_done`` move.

Every place that needs a position computes it with these functions: the loop
(:mod:`fsm_trainer.loop`, which :func:`fsm_trainer.run` and the dry run
:func:`fsm_trainer.simulate.simulate` both drive), and the hooks that save a position to
continue from (checkpoint, evaluation's best checkpoint, ``runner.save_checkpoint`` of mmcv
class hooks). The loop's generated inner loop writes the same rules positionally (the only
place that does); a test compares it with these functions at every point of many runs.

Conventions (mmcv 1.7.2's, see :mod:`fsm_trainer.state`):

* At ``before_<mode>_iter`` of batch ``k`` the state has ``inner_iter = k`` and ``iter`` the
  number of train iterations done (:func:`at_batch`).
* After an iteration, ``iter`` counts it if it was a train iteration and ``inner_iter`` is the
  number of batches done in the epoch or segment (:func:`iteration_done`). An epoch-based
  epoch ends with ``inner_iter`` on its last batch (hooks at ``after_<mode>_epoch`` see it).
* After a train epoch, ``epoch`` counts it (:func:`epoch_done`); ``phase_done`` counts units
  and is moved only by the table (:func:`fsm_trainer.transitions.transition`).
* A checkpoint saved at a point stores the position the run continues from
  (:func:`resume_position`).

>>> s = TrainState(mode="train", phase=0)
>>> iteration_done(at_batch(s, "train", 3)).inner_iter, iteration_done(s).iter
(4, 1)
>>> epoch_done(s).epoch, epoch_done(attrs.evolve(s, mode="val")).epoch
(1, 0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from fsm_trainer.state import TrainState, make_state, plain_outputs

if TYPE_CHECKING:
    from fsm_trainer.transitions import TransitionTable


def at_batch(s: TrainState, mode: str, inner_iter: int, *, epoch: int | None = None,
             phase_done: int | None = None) -> TrainState:
    """The state at ``before_<mode>_iter`` of batch ``inner_iter``.

    ``epoch`` is given for an iter-based train batch (the passes its loader had completed);
    ``phase_done`` for an iter-based segment (the iterations of this visit done before it).
    """
    return make_state(s.epoch if epoch is None else epoch, s.iter, inner_iter, mode, s.outputs, s.phase,
                      s.phase_done if phase_done is None else phase_done, s.stop, s.hook_states)


def iteration_done(s: TrainState) -> TrainState:
    """The position after the iteration at ``s``: one more train iteration, one more batch done."""
    return make_state(s.epoch, s.iter + (s.mode == "train"), s.inner_iter + 1, s.mode, s.outputs, s.phase,
                      s.phase_done, s.stop, s.hook_states)


def epoch_done(s: TrainState) -> TrainState:
    """The position after the epoch-based epoch at ``s``: a train epoch is counted."""
    return make_state(s.epoch + (s.mode == "train"), s.iter, s.inner_iter, s.mode, s.outputs, s.phase,
                      s.phase_done, s.stop, s.hook_states)


def resumed_in_epoch(s: TrainState, batches: int) -> TrainState:
    """The state of an epoch-based train epoch re-entered after ``batches`` (> 0) batches.

    It is the state the last of those batches ended with: ``inner_iter`` on that batch, so an
    epoch with nothing left ends as one that ran them all.
    """
    return make_state(s.epoch, s.iter, batches - 1, "train", s.outputs, s.phase, s.phase_done, s.stop,
                      s.hook_states)


def resume_position(table: TransitionTable, s: TrainState, point: str | None) -> TrainState:
    """The position a checkpoint saved at hook point ``point`` with state ``s`` continues from.

    Plain data (:func:`~fsm_trainer.state.plain_outputs`) with ``stop`` cleared:

    * ``after_train_iter`` in an epoch-based run: :func:`iteration_done` (the loop continues
      the epoch at the next batch).
    * ``after_train_epoch``: :func:`epoch_done`, then the next unit of the table;
      ``after_val_epoch``: the next unit of the table.
    * ``after_<mode>_iter`` in an iter-based run: :func:`iteration_done`, then the next unit.
    * elsewhere (``before_*`` points, an epoch-based ``after_val_iter``: a val epoch is never
      resumed in its middle, it runs again): ``s`` itself.

    >>> from fsm_trainer.transitions import compile_workflow, transition
    >>> t = compile_workflow([("train", 1)], max_epochs=2)
    >>> s = attrs.evolve(transition(t, TrainState(), "start"), inner_iter=4, iter=4)
    >>> p = resume_position(t, s, "after_train_iter")
    >>> p.epoch, p.iter, p.inner_iter
    (0, 5, 5)
    >>> p = resume_position(t, s, "after_train_epoch")
    >>> p.epoch, p.iter, p.inner_iter, p.phase_done
    (1, 4, 0, 0)
    """
    from fsm_trainer.transitions import transition

    out = plain_outputs(s.outputs)
    base = make_state(s.epoch, s.iter, s.inner_iter, s.mode, out, s.phase, s.phase_done, False, s.hook_states)
    if s.phase < 0 or point is None:
        return base
    if point == "after_train_epoch":
        return transition(table, epoch_done(base), "done")
    if point == "after_val_epoch":
        return transition(table, base, "done")
    if point in ("after_train_iter", "after_val_iter"):
        if table.by == "iter":
            return transition(table, iteration_done(base), "done")
        if point == "after_train_iter":
            return iteration_done(base)
    return base


def same_counters(a: TrainState, b: TrainState) -> bool:
    """Whether ``a`` and ``b`` are at the same position (every field but ``outputs``/``hook_states``)."""
    keys = ("epoch", "iter", "inner_iter", "mode", "phase", "phase_done", "stop")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def describe(s: TrainState) -> dict[str, Any]:
    """The position of ``s`` as a dict (for messages and traces)."""
    return {k: v for k, v in attrs.asdict(s, recurse=False).items() if k not in ("outputs", "hook_states")}


__all__ = ["at_batch", "describe", "epoch_done", "iteration_done", "resume_position",
           "resumed_in_epoch", "same_counters"]
