"""The checkpoint hook: mmcv's ``CheckpointHook`` options, atomic saves, exact resume, preemption.

The factory returns two hooks. ``CheckpointHook`` at mmcv's NORMAL priority decides *whether*
to save (and logs it, as mmcv does at that point); ``CheckpointHook.writer`` at LOWEST writes
the checkpoint after every other hook of the same point has run. So the saved hook states
(EMA weights, accumulation counters, log averages) include this iteration's updates, and the
resumed run is exact whatever the hooks' priorities. The state written is the position to
*continue from*: the counters already advanced past the iteration or epoch that just ended.

Differences from mmcv 1.7.2, on purpose:

* A checkpoint is a directory ``epoch_<n>``/``iter_<n>`` (safetensors + JSON), not a pickle.
* Iter-based checkpoints store the number of *completed* iterations (mmcv stores one less and
  re-runs an iteration after resuming).
* ``by_epoch=False`` in an epoch-based run names its checkpoints ``iter_<n>`` (mmcv wrote
  ``epoch_<n>``, overwritten mid-epoch) and they resume mid-epoch, exactly.
* ``max_keep_ckpts`` deletes the oldest checkpoints of the hook's kind only after the new one
  and the ``latest`` pointer are committed, and does not stop at the first gap.
* On SIGTERM or SIGINT (``preempt=True``) the current iteration finishes, a checkpoint is
  saved and the run stops; ``after_run`` is called. A second SIGINT interrupts at once. In a
  val epoch of an epoch-based run the checkpoint is the position (and RNG states) at the start
  of that val epoch, which the resumed run repeats: val epochs have no resumable position of
  their own, and their hooks change no saved state in the shipped hooks. The worker
  processes of the run's DataLoaders (``num_workers > 0``) are made to ignore SIGINT, and
  SIGTERM not sent by their own process (:func:`fsm_trainer.data.ignore_stop_signals_in_workers`),
  so a signal sent to the whole process group (``scancel``) does not kill them before the
  checkpoint is saved.
* The state written never has ``stop`` set, even when another hook asked the run to stop at
  that point: it is the position to continue from, so a run resumed from it goes on.

Distributed (a process group of several ranks): every rank runs the hook; the ranks' RNG
states and log buffers are gathered to rank 0, which alone writes (and rotates and cleans up)
checkpoints, and a barrier after each save keeps every rank behind a committed checkpoint.
With ``preempt``, the ranks agree at each iteration boundary whether any of them caught a
signal (one small all-reduce), so they all save and stop at the same iteration.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fsm_trainer import rng
from fsm_trainer.checkpoint import _fault, cleanup_stale, remove_checkpoint, save_snapshot, to_remove
from fsm_trainer.context import RunContext
from fsm_trainer.counters import resume_position
from fsm_trainer.data import ignore_stop_signals_in_workers
from fsm_trainer.dist import any_rank, get_dist_info
from fsm_trainer.errors import HookError
from fsm_trainer.hook import Hook, HookFn, resolve_by_epoch
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


def checkpoint_hook(
    interval: int = 1,
    by_epoch: bool | None = None,
    max_keep_ckpts: int = -1,
    save_optimizer: bool = True,
    out_dir: str | Path | None = None,
    save_last: bool = True,
    *,
    preempt: bool = True,
    name: str = "CheckpointHook",
    priority: int | str = Priority.NORMAL,
) -> Callable[[RunContext], list[Hook]]:
    """mmcv's ``CheckpointHook`` as a factory for :func:`fsm_trainer.run`.

    Args:
        interval: save every ``interval`` epochs (``by_epoch``) or train iterations; ``<= 0``
            saves only the last one (with ``save_last``).
        by_epoch: save at the end of train epochs; defaults to the table's kind. ``False`` in
            an epoch-based run saves every ``interval`` iterations, mid-epoch.
        max_keep_ckpts: keep only this many checkpoints of this hook's kind (``-1``: all).
        save_optimizer: include the optimizer state (needed to resume exactly).
        out_dir: as mmcv: ``out_dir/<basename of work_dir>``; default ``work_dir``.
        save_last: also save after the last epoch or iteration whatever ``interval`` says.
        preempt: on SIGTERM/SIGINT, save at the next iteration boundary and stop the run.
        name, priority: of the deciding hook (the writer is ``<name>.writer`` at LOWEST).

    Returns:
        A hook factory.
    """
    if isinstance(interval, bool) or not isinstance(interval, int):
        msg = f"interval must be an int, got {interval!r}"
        raise HookError(msg)
    if isinstance(max_keep_ckpts, bool) or not isinstance(max_keep_ckpts, int) or max_keep_ckpts == 0:
        msg = f"max_keep_ckpts must be a positive int or -1 (keep all), got {max_keep_ckpts!r}"
        raise HookError(msg)

    def factory(ctx: RunContext) -> list[Hook]:
        table = ctx.table
        per_epoch = resolve_by_epoch(name, by_epoch, table)
        if out_dir is None:
            if ctx.work_dir is None:
                msg = f"{name} needs run(..., work_dir=...) or out_dir="
                raise HookError(msg)
            directory = ctx.work_dir
        else:
            directory = Path(out_dir) / ctx.work_dir.name if ctx.work_dir is not None else Path(out_dir)
        ctx.checkpoint_dirs.append(directory)
        prefix = "epoch_" if per_epoch else "iter_"
        extra: list[Hook] = []
        pending = [False]
        caught: list[str] = []
        previous: dict[int, Any] = {}

        def every(n: int) -> bool:
            return interval > 0 and n % interval == 0

        # ------------------------------------------------ the deciding hook (NORMAL)

        def decide_epoch(s: TrainState) -> TrainState:
            if every(s.epoch + 1) or (save_last and s.epoch + 1 == table.max_epochs):
                ctx.logger.info("Saving checkpoint at %d epochs", s.epoch + 1)
                pending[0] = True
            return s

        def decide_iter(s: TrainState) -> TrainState:
            if every(s.iter + 1) or (save_last and s.iter + 1 == ctx.max_iters):
                ctx.logger.info("Saving checkpoint at %d iterations", s.iter + 1)
                pending[0] = True
            return s

        # ------------------------------------------------ the writer (LOWEST)

        rank, world = get_dist_info()
        agree = preempt and world > 1

        def write(resume_at: TrainState, ckpt_name: str, rng_states: Any = None) -> Path:
            path = save_snapshot(ctx, resume_at, directory, ckpt_name, save_optimizer=save_optimizer,
                                 rng_states=rng_states)
            ctx.meta.setdefault("hook_msgs", {})["last_ckpt"] = str(path)
            _fault("before_rotate")
            if max_keep_ckpts > 0 and rank == 0:
                names = [p.name for p in directory.iterdir() if p.is_dir()]
                for old in to_remove(names, max_keep_ckpts, prefix):
                    remove_checkpoint(directory / old)
            return path

        def signalled() -> bool:
            if agree and any_rank(bool(caught)) and not caught:
                caught.append("a signal on another rank")
            return bool(caught)

        def stop(s: TrainState, path: Path) -> TrainState:
            ctx.logger.warning("stopped by %s: saved %s; continue with run(..., resume='auto')", caught[0], path)
            return s.with_hook_state(name, {"preempted": caught[0], "checkpoint": str(path)}).request_stop()

        def finish(
            s: TrainState, resume_at: Callable[[], TrainState], ckpt_name: Callable[[TrainState], str]
        ) -> TrainState:
            if not signalled() and not pending[0]:
                return s
            pending[0] = False
            at = resume_at()
            path = write(at, ckpt_name(at))
            return stop(s, path) if caught else s

        def resume_at(s: TrainState, point: str) -> Callable[[], TrainState]:
            # A stop asked for at this point ends this process, not the run resumed from here.
            return lambda: resume_position(table, s, point)

        if table.by == "epoch":

            def write_train_iter(s: TrainState) -> TrainState:
                return finish(s, resume_at(s, "after_train_iter"), lambda a: f"iter_{a.iter}")

            def write_train_epoch(s: TrainState) -> TrainState:
                return finish(s, resume_at(s, "after_train_epoch"), lambda a: f"epoch_{s.epoch + 1}")

            def write_val_epoch(s: TrainState) -> TrainState:
                return finish(s, resume_at(s, "after_val_epoch"),
                              lambda a: f"epoch_{s.epoch}" if per_epoch else f"iter_{s.iter}")

            # A val epoch is not resumed in the middle: a signal during one saves the position
            # (and RNG states) its start had, and the resumed run repeats that val epoch.
            val_start: list[Any] = [None]

            def mark_val_start(s: TrainState) -> TrainState:
                val_start[0] = (resume_position(table, s, "before_val_epoch"), rng.capture())
                return s

            def write_val_iter(s: TrainState) -> TrainState:
                if not signalled():
                    return s
                at, states = val_start[0]
                return stop(s, write(at, f"epoch_{at.epoch}" if per_epoch else f"iter_{at.iter}", states))

            writer_on: dict[str, HookFn] = {"after_train_epoch": write_train_epoch}
            if not per_epoch or preempt:
                writer_on["after_train_iter"] = write_train_iter
            if preempt and "val" in table.reachable_modes():
                writer_on["after_val_epoch"] = write_val_epoch
                writer_on["after_val_iter"] = write_val_iter
                extra.append(Hook(f"{name}.val_start", Priority.HIGHEST, {"before_val_epoch": mark_val_start}))
        else:

            writer_on = {"after_train_iter": lambda s: finish(s, resume_at(s, "after_train_iter"),
                                                              lambda a: f"iter_{a.iter}")}
            if preempt and "val" in table.reachable_modes():
                writer_on["after_val_iter"] = lambda s: finish(s, resume_at(s, "after_val_iter"),
                                                               lambda a: f"iter_{a.iter}")

        # ------------------------------------------------ signals

        def on_signal(signum: int, frame: Any) -> None:
            if caught and signum == signal.SIGINT:
                uninstall()
                raise KeyboardInterrupt
            if not caught:
                caught.append(signal.Signals(signum).name)

        def uninstall() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            previous.clear()

        def shield_workers() -> None:
            for loader in ctx.data_loaders:
                if ignore_stop_signals_in_workers(loader):
                    ctx.logger.debug("the workers of %r will outlive a SIGTERM or SIGINT to the group", loader)

        handles_signals = preempt and threading.current_thread() is threading.main_thread()
        if handles_signals:
            # Now, not in before_run: an iter-based run starts its loaders' iterators (and their
            # worker processes) before before_run.
            shield_workers()

        def before_run(s: TrainState) -> TrainState:
            for p in cleanup_stale(directory) if rank == 0 else ():
                ctx.logger.info("removed %s, left by an interrupted save", p)
            ctx.logger.info("Checkpoints will be saved to %s", directory)
            if handles_signals:
                shield_workers()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    previous[sig] = signal.signal(sig, on_signal)
                ctx.on_exit.append(uninstall)
            return s

        def after_run(s: TrainState) -> TrainState:
            uninstall()
            return s

        decide_on: dict[str, HookFn] = {"before_run": before_run, "after_run": after_run}
        if per_epoch:
            decide_on["after_train_epoch"] = decide_epoch
        else:
            decide_on["after_train_iter"] = decide_iter
        return [Hook(name, priority, decide_on), Hook(f"{name}.writer", Priority.LOWEST, writer_on), *extra]

    return factory
