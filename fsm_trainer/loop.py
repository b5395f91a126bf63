"""The loop that drives a transition table: one driver for real runs and dry runs.

:class:`Loop` walks the table (``start``, then one unit of the current entry, ``done``, until
``end``) and calls the composed hook stages at mmcv's points; :func:`fsm_trainer.run` gives it
the model's step functions and its effects (train/eval mode, ``no_grad``, resume), and
:func:`fsm_trainer.simulate.simulate` gives it loaders known by their lengths, steps that do
nothing and recording hooks. Both therefore visit the same points with the same states.

The batches of one unit (an epoch-based epoch, or an iter-based segment of the table's
self-loop) run in a function generated from one template (:func:`unit_loop`), specialised by
run kind, mode and which of the two iteration points have hooks, so an iteration costs
only the calls it needs. Its counter updates are the rules of :mod:`fsm_trainer.counters`,
written positionally.

Event order, epoch-based table (``unit`` = one epoch)::

    before_run
    state = transition(table, state, "start")
    while state.phase != END:
        before_<mode>_epoch
        for inner_iter, batch in enumerate(loader):
            before_<mode>_iter; outputs = <mode>_step(batch); after_<mode>_iter
            iter += 1 (train)
        after_<mode>_epoch; epoch += 1 (train)
        state = transition(table, state, "done")
    after_run

Iter-based table (``unit`` = one iteration, loaders cycle endlessly)::

    before_run; before_epoch
    state = transition(table, state, "start")
    while state.phase != END:
        repeat run_length(table, state) times:    # the table's self-loop, in closed form
            epoch = passes the loader had completed     (train entries only)
            before_<mode>_iter; outputs = <mode>_step(next(loader)); after_<mode>_iter
            inner_iter += 1; iter += 1 (train only)
        state = transition(table, state, "done")  # entering an entry resets inner_iter
    after_epoch; after_run

A hook that sets ``stop`` ends the run after the current hook point: the remaining points of
that iteration or epoch are skipped (a stop at ``before_*_iter`` skips the step too, and
``iter`` stays the number of iterations done), then ``after_epoch`` (iter-based) and
``after_run`` run.

Resuming: ``restorer`` (see :mod:`fsm_trainer.checkpoint`) gives the hooks' saved states,
the RNG states and the loaders' positions; ``before_run`` (and ``before_epoch``, iter-based)
run as in any run, then the hooks' states and the RNG states are restored and the loop
continues at the saved position. An epoch-based state in a train entry with
``inner_iter = k > 0`` means "k batches of this epoch are done": the epoch goes on at batch
``k`` (through the loader's resumable sampler, in O(1)) without calling
``before_train_epoch`` again.

This module does not import torch.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from typing import Any

from fsm_trainer import counters
from fsm_trainer.data import IterLoader, set_data_position, set_sampler_epoch, skip_batches
from fsm_trainer.errors import ArgumentTypeError
from fsm_trainer.state import TrainState, make_state
from fsm_trainer.transitions import END, START, TransitionTable, run_length, transition

HookFn = Callable[[TrainState], TrainState]
StepFn = Callable[[Any], Any]
Unit = Callable[[TrainState, Any, int, int, StepFn, Any, Any], TrainState]

_TEMPLATE = """\
def unit(s, batches, n, inner, step, before, after):
    it, d0 = s.iter, s.phase_done
{header}
{before}
        out = step(batch)
        if out.__class__ is not dict:
            out = bad_outputs(step, out)
{with_out}
{after}
        it, inner = s.iter + {train}, s.inner_iter + 1
        if s.stop:
            break
    return _TS(s.epoch, it, {last_inner}, s.mode, s.outputs, s.phase, s.phase_done, s.stop, s.hook_states)
"""

_HEADERS = {
    # An epoch's batches: ``inner`` is the first batch's index (> 0 when resuming inside it).
    "epoch": "    for batch in batches:",
    # A segment of ``n`` iterations from an endless loader; a train batch's ``epoch`` is the
    # number of passes the loader had completed when it was drawn.
    "iter": "    for k in range(n):\n{epoch}        batch = next(batches)",
}


def _default_bad_outputs(step: Any, out: Any) -> Any:
    msg = f"the step {step!r} returned {type(out).__name__}, not a dict"
    raise ArgumentTypeError(msg)


@functools.cache
def unit_loop(by: str, mode: str, before: bool, after: bool, bad_outputs: Callable[[Any, Any], Any]) -> Unit:
    """The batch loop of one unit, generated for ``by`` (``"epoch"``/``"iter"``), ``mode`` and
    whether ``before_<mode>_iter``/``after_<mode>_iter`` have hooks.

    The generated function ``unit(s, batches, n, inner, step, before, after)`` runs the batches
    of ``batches`` (an epoch-based epoch's iterator; an iter-based run's endless loader, ``n``
    of them) from batch index ``inner`` and returns the state after the last one, or the
    state at which a hook asked to stop. The states hooks see follow :mod:`fsm_trainer.counters`:
    :func:`~fsm_trainer.counters.at_batch` before the step, then
    :func:`~fsm_trainer.counters.iteration_done` once ``after_<mode>_iter`` ran; an
    epoch-based epoch returns with ``inner_iter`` on its last batch.
    """
    if by == "epoch":
        epoch, done = "s.epoch", "s.phase_done"
        header = _HEADERS["epoch"]
    else:
        epoch, done = ("epoch" if mode == "train" else "s.epoch"), "d0 + k"
        header = _HEADERS["iter"].format(epoch="        epoch = batches.epoch\n" if mode == "train" else "")
    at = f"_TS({epoch}, it, inner, {mode!r}, {{out}}, s.phase, {done}, s.stop, s.hook_states)"
    if before:
        before_src = (f"        s = before({at.format(out='s.outputs')})\n"
                      "        if s.stop:  # the iteration does not run; iter stays the count of those done\n"
                      "            return s")
        with_out = "        s = _TS(s.epoch, s.iter, s.inner_iter, s.mode, out, s.phase, s.phase_done, s.stop, " \
                   "s.hook_states)"
    else:
        before_src = ""
        with_out = f"        s = {at.format(out='out')}"
    source = _TEMPLATE.format(
        header=header, before=before_src, with_out=with_out,
        after="        s = after(s)" if after else "",
        train=int(mode == "train"),
        last_inner="s.inner_iter" if by == "epoch" else "inner",
    )
    source = "\n".join(line for line in source.split("\n") if line.strip()) + "\n"
    from fsm_trainer._codegen import define

    fn: Unit = define("unit", source, {"_TS": make_state, "bad_outputs": bad_outputs},
                      what=f"unit loop {by}/{mode}")
    return fn


def _null_scope(mode: str) -> ContextManager[Any]:
    return contextlib.nullcontext()


class Loop:
    """Drive ``table`` from a state to ``end``, calling the hook stages ``fns``.

    Args:
        table: the compiled workflow.
        fns: the composed stage of each hook point (``None`` or missing: no hook there).
        loaders: one iterable per workflow entry.
        steps: the step function of each mode (``{"train": ..., "val": ...}``).
        scope: ``scope(mode)`` is entered around each unit (the runner's train/eval mode and
            ``no_grad``); nothing by default.
        restorer: the checkpoint being resumed from, or ``None``.
        logger: for notes about skipped batches.
        on_iter_loaders: called with the iter-based run's endless loaders before ``before_run``.
        bad_outputs: called with ``(step, out)`` when a step returns something other than a
            dict; returns the dict to use or raises.
    """

    def __init__(
        self, table: TransitionTable, fns: Mapping[str, HookFn | None], loaders: Sequence[Iterable[Any]],
        steps: Mapping[str, StepFn], *, scope: Callable[[str], ContextManager[Any]] = _null_scope,
        restorer: Any = None, logger: logging.Logger | None = None,
        on_iter_loaders: Callable[[list[IterLoader]], None] | None = None,
        bad_outputs: Callable[[Any, Any], Any] = _default_bad_outputs,
    ) -> None:
        self.table, self.fns, self.loaders, self.steps = table, fns, loaders, steps
        self.scope, self.restorer, self.logger = scope, restorer, logger
        self.on_iter_loaders = on_iter_loaders
        self.bad_outputs = bad_outputs

    def call(self, site: str, s: TrainState) -> TrainState:
        fn = self.fns.get(site)
        return s if fn is None else fn(s)

    def unit(self, mode: str) -> Unit:
        fns = self.fns
        return unit_loop(self.table.by, mode, fns.get(f"before_{mode}_iter") is not None,
                         fns.get(f"after_{mode}_iter") is not None, self.bad_outputs)

    def run_unit(self, s: TrainState, mode: str, batches: Any, n: int, inner: int) -> TrainState:
        fns = self.fns
        return self.unit(mode)(s, batches, n, inner, self.steps[mode], fns.get(f"before_{mode}_iter"),
                               fns.get(f"after_{mode}_iter"))

    def restore_hooks(self) -> None:
        if self.restorer is not None:
            self.restorer.load_hooks()

    def restore_rng(self) -> None:
        if self.restorer is not None:
            self.restorer.load_rng()
            self.restorer = None

    def run(self, s: TrainState) -> TrainState:
        """Run from ``s`` to the end of the table (or a stop); return the final state."""
        return self._run_epochs(s) if self.table.by == "epoch" else self._run_iters(s)

    # ------------------------------------------------------------------ epoch-based

    def _run_epochs(self, s: TrainState) -> TrainState:
        table, loaders = self.table, self.loaders
        s = self.call("before_run", s)
        self.restore_hooks()
        # A train state with inner_iter = k > 0 is a mid-epoch position: k batches are done.
        start = s.inner_iter if s.phase >= 0 and table.workflow[s.phase][0] == "train" else 0
        if not start:
            self.restore_rng()
        if s.phase == START and not s.stop:
            s = transition(table, s, "start")
        while s.phase != END and not s.stop:
            mode = table.workflow[s.phase][0]
            with self.scope(mode):
                s = self._epoch(s, mode, loaders[s.phase], start)
            start = 0
            if not s.stop:
                s = transition(table, s, "done")
        return self.call("after_run", s)

    def _epoch(self, s: TrainState, mode: str, loader: Iterable[Any], start: int) -> TrainState:
        if start:  # resuming inside the epoch: before_train_epoch already ran before the save
            seekable = set_data_position(loader, s.epoch, start)
            s = counters.resumed_in_epoch(s, start)
        else:
            if mode == "train":
                set_sampler_epoch(loader, s.epoch)
            s = self.call(f"before_{mode}_epoch", s)
            if s.stop:
                return s
        batches = iter(loader)
        if start:
            if not seekable:
                skip_batches(batches, start, loader, self.logger)
            # After iter(): a DataLoader without generator= draws its worker seed from the global RNG.
            self.restore_rng()
        s = self.run_unit(s, mode, batches, 0, start)
        if s.stop:
            return s
        s = self.call(f"after_{mode}_epoch", s)
        return counters.epoch_done(s)

    # ------------------------------------------------------------------ iter-based

    def _run_iters(self, s: TrainState) -> TrainState:
        table = self.table
        positions = self.restorer.iter_positions() if self.restorer is not None else None
        if positions is not None:  # resuming: every loader continues where it was
            pairs = zip(self.loaders, positions, strict=True)
            iter_loaders = [IterLoader.at(x, e, i, self.logger) for x, (e, i) in pairs]
        else:  # a state given without loader positions: train loaders start at the state's pass
            iter_loaders = [
                IterLoader(x, s.epoch if mode == "train" else 0)
                for x, (mode, _) in zip(self.loaders, table.workflow, strict=True)
            ]
        if self.on_iter_loaders is not None:
            self.on_iter_loaders(iter_loaders)
        s = self.call("before_run", s)
        if not s.stop:
            s = self.call("before_epoch", s)
        self.restore_hooks()
        self.restore_rng()
        if s.phase == START and not s.stop:
            s = transition(table, s, "start")
        while s.phase != END and not s.stop:
            mode = table.workflow[s.phase][0]
            with self.scope(mode):
                s = self.run_unit(s, mode, iter_loaders[s.phase], run_length(table, s), s.inner_iter)
            if not s.stop:
                s = transition(table, s, "done")
        s = self.call("after_epoch", s)
        return self.call("after_run", s)


def record_points(points: Iterable[str], into: list[tuple[str, TrainState]]) -> dict[str, HookFn]:
    """Hook stages that append ``(point, state)`` to ``into`` at each of ``points``."""

    def recorder(point: str) -> HookFn:
        def record(s: TrainState) -> TrainState:
            into.append((point, s))
            return s

        return record

    return {p: recorder(p) for p in points}


def lengths_as_loaders(lens: Sequence[int]) -> list[range]:
    """Loaders known only by their lengths (each batch is its index)."""
    return [range(n) for n in lens]


def no_step(batch: Any) -> dict[str, Any]:
    """A step that does nothing (the dry run's)."""
    return {}


__all__ = ["Loop", "lengths_as_loaders", "no_step", "record_points", "unit_loop"]
