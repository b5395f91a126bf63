"""What every logger shares: *when* to average the log buffer and log, and *what* a record is.

mmcv's ``LoggerHook`` base class decides when its subclasses' ``log(runner)`` runs; here
:func:`logger_hook` makes that decision once and hands each backend a :class:`LogRecord`
through a :class:`LogWriter` (three functions: ``open``, ``write``, ``close``). The text,
TensorBoard, MLflow and progress-bar loggers are such writers.

The rules are mmcv 1.7.2's (``hooks/logger/base.py``):

* ``before_epoch`` (every train and val epoch of an epoch-based run; once in an iter-based
  run): clear the shared buffer.
* ``after_train_iter``: average the last ``interval`` values when ``inner_iter + 1`` (``by_epoch``)
  or ``iter + 1`` is a multiple of ``interval``, or, with ``ignore_last=False``, at the last
  batch of the epoch; then, if the buffer is ready, log and (for the last logger or with
  ``reset_flag``) clear the averages.
* ``after_train_epoch``: log if the buffer is ready (an eval hook put its metrics there).
* ``after_val_epoch``: average the whole val epoch and log it.

An eval hook that evaluates in ``after_train_iter`` (iter-based) first calls every logger's
``after_train_iter`` function (``hook.on["after_train_iter"]``), so the train values of that
iteration are logged before its metrics, as mmcv's ``EvalHook`` does (:func:`flush_loggers`).

A record's ``mode`` is ``"val"`` in a val phase and for an eval hook's metrics (which it logs
in a train phase, marked by :data:`EVAL_ITER_KEY`), else ``"train"``; its ``epoch`` is
``epoch + 1`` in a train phase and ``epoch`` in a val phase, as mmcv's ``get_epoch``.

The last logger in call order always clears the averages after logging, so each interval is
logged once by every logger (mmcv forces ``reset_flag`` on it in ``before_run``).

Several loggers share one buffer, as in mmcv. Each averages the last ``interval`` entries of
each key's history at its own points; the history is only cleared by ``before_epoch`` and by an
iter-based evaluation (mmcv's ``EvalHook`` clears it after flushing the loggers), never by a
logger's ``after_train_iter``, which clears the averages only. So a logger without
``reset_flag`` leaves its averages ready, and a later logger of the same iteration logs them
too (mmcv does). The buffer keeps as many entries per key as the largest interval of the
run's loggers (:meth:`~fsm_trainer.logbuffer.LogBuffer.keep`): every logger's averages are
mmcv's, and so are those of a run resumed from a checkpoint, which saves the buffer.

Steps may log tensors (``loss.detach()``, also on an accelerator): the buffer keeps them as
they are and reads them back to Python numbers only when a logger averages (one host sync per
device at a logging point, see :class:`~fsm_trainer.logbuffer.LogBuffer`), so the iterations
between logging points never wait for the device, and every backend gets Python floats.

Distributed (several ranks): every rank keeps its own buffer and runs the same rules; at each
point where a logger averages, the averages are then averaged over the ranks (every rank takes
part), and only rank 0's backend is opened and written to. mmcv instead all-reduces each
iteration's losses in the model's ``_parse_losses``; the logged value is the same mean for
equal ``num_samples`` per rank.

Differences from mmcv: mmcv guesses ``"val"`` from a missing ``time`` entry (so a run without
a timer logs its train lines as val, mmcv#1248); here the eval hook's marker decides. In an
iter-based run each logger averages val iterations apart from train ones and logs them when
the val segment ends, as ``mode="val"`` with ``iter`` = the train iterations done (mmcv mixes
them into the next train record, mmcv#1058).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import attrs

from fsm_trainer.context import RunContext
from fsm_trainer.dist import all_reduce_max, all_reduce_mean, get_dist_info
from fsm_trainer.errors import HookError
from fsm_trainer.hook import Hook, HookFn, reachable_only
from fsm_trainer.logbuffer import LogBuffer
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState

EVAL_ITER_KEY = "eval_iter_num"
"""The buffer key an eval hook sets to the length of its loader; a record shows it as ``iter``."""


@attrs.frozen(slots=True)
class LogRecord:
    """One logged interval or epoch, as every logger sees it.

    Attributes:
        mode: ``"train"`` or ``"val"`` (mmcv's ``get_mode``).
        epoch: mmcv's ``get_epoch``: ``epoch + 1`` in a train phase, ``epoch`` in a val phase.
        iter: the number in the text line: ``inner_iter + 1`` (``by_epoch``), else ``iter + 1``,
            or the eval loader's length for eval metrics.
        step: ``iter + 1``, the x axis of TensorBoard and MLflow (mmcv's ``get_iter(runner)``).
        values: the averaged ``log_vars``, ``time``, ``data_time`` and eval metrics.
        by_epoch: whether ``iter`` counts inside the epoch.
    """

    mode: str
    epoch: int
    iter: int
    step: int
    values: Mapping[str, Any]
    by_epoch: bool = True


class LogWriter(NamedTuple):
    """A logging backend: what :func:`logger_hook` calls.

    ``open(state)`` at ``before_run``, ``write(state, record)`` for each record, ``close()`` at
    ``after_run`` (and when the run raises). A backend that needs other hook points (a
    progress bar's per-iteration tick) adds a hook of its own next to the logger.
    """

    open: Callable[[TrainState], None]
    write: Callable[[TrainState, LogRecord], None]
    close: Callable[[], None]


def _nothing(*_: Any) -> None:
    return None


def writer(
    write: Callable[[TrainState, LogRecord], None],
    open: Callable[[TrainState], None] = _nothing,
    close: Callable[[], None] = _nothing,
) -> LogWriter:
    """A :class:`LogWriter` from a ``write`` function and optional ``open``/``close``.

    >>> records = []
    >>> w = writer(lambda s, r: records.append((r.mode, r.iter)))
    >>> w.write(TrainState(), LogRecord("train", 1, 10, 10, {"loss": 0.5}))
    >>> records
    [('train', 10)]
    """
    return LogWriter(open, write, close)


def current_momentum(ctx: RunContext) -> list[float] | dict[str, list[float]]:
    """Momentum of every param group, as mmcv's ``runner.current_momentum()``.

    ``momentum`` for SGD-like groups, ``betas[0]`` for Adam-like ones, ``0`` otherwise.
    """

    def of(opt: Any) -> list[float]:
        out = []
        for g in opt.param_groups:
            if "momentum" in g:
                out.append(g["momentum"])
            elif "betas" in g:
                out.append(g["betas"][0])
            else:
                out.append(0)
        return out

    opt = ctx.optimizer
    if opt is None:
        return []
    if isinstance(opt, dict):
        return {k: of(o) for k, o in opt.items()}
    return of(opt)


def scalar_tags(ctx: RunContext, record: LogRecord, *, skip: tuple[str, ...] = ("time", "data_time")) -> dict[str, Any]:
    """mmcv's ``get_loggable_tags``: ``<mode>/<key>`` for each value, plus learning rate and momentum.

    Strings are kept (TensorBoard writes them as text); ``skip`` names keys left out.
    """
    tags = {f"{record.mode}/{k}": v for k, v in record.values.items() if k not in skip}
    for prefix, per_group in (("learning_rate", ctx.current_lr()), ("momentum", current_momentum(ctx))):
        if isinstance(per_group, dict):
            tags.update({f"{prefix}/{k}": v[0] for k, v in per_group.items() if v})
        elif per_group:
            tags[prefix] = per_group[0]
    return tags


def flush_loggers(ctx: RunContext, s: TrainState, point: str) -> TrainState:
    """Call every logger's function at ``point`` now, in call order (mmcv's EvalHook does this)."""
    for h in ctx.hooks:
        fn = h.on.get(point) if h.name in ctx.loggers else None
        if fn is not None:
            s = fn(s)
    return s


def _check_interval(interval: Any) -> None:
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        msg = f"interval must be a positive int, got {interval!r}"
        raise HookError(msg)


def _reduced(buf: LogBuffer, ctx: RunContext) -> Callable[[int], None]:
    """``buf.average`` followed by the mean of the numeric averages over the ranks (and, on
    CUDA, the peak memory of the busiest rank in ``ctx.logs.memory_mb``)."""
    import torch

    cuda = torch.cuda.is_available()

    def average(n: int) -> None:
        buf.average(n)
        numbers = {k: v for k, v in buf.output.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        buf.output.update(all_reduce_mean(numbers))
        if cuda:
            ctx.logs.memory_mb = all_reduce_max(int(torch.cuda.max_memory_allocated()) // (1024 * 1024))

    return average


def logger_hook(
    make_writer: Callable[[RunContext, bool], LogWriter],
    *,
    name: str,
    interval: int = 10,
    ignore_last: bool = True,
    reset_flag: bool = False,
    by_epoch: bool | None = None,
    priority: int | str = Priority.VERY_LOW,
) -> Callable[[RunContext], Hook]:
    """A logger hook factory: mmcv's ``LoggerHook`` rules around a backend.

    Args:
        make_writer: ``(ctx, by_epoch) -> LogWriter``, called once per run when the hook is built.
        name: the hook's name (unique in a run).
        interval: average and log every this many train iterations (> 0).
        ignore_last: skip the last iterations of an epoch that do not fill an interval.
        reset_flag: clear the averages after logging (the last logger always does).
        by_epoch: count ``interval`` inside epochs; defaults to the table's kind.
        priority: mmcv's loggers run at VERY_LOW, after every hook that writes into the buffer.

    >>> from fsm_trainer import compile_workflow, run
    >>> seen = []
    >>> hook = logger_hook(lambda ctx, by_epoch: writer(lambda s, r: seen.append((r.mode, r.epoch, r.iter,
    ...                    dict(r.values)))), name="spy", interval=2)
    >>> outs = iter([{"log_vars": {"loss": v}, "num_samples": 1} for v in (1.0, 3.0, 5.0)])
    >>> _ = run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[0, 1, 2]],
    ...         train_step=lambda b: next(outs), val_step=lambda b: {}, hooks=[hook])
    >>> seen
    [('train', 1, 2, {'loss': 2.0})]
    """
    _check_interval(interval)

    def factory(ctx: RunContext) -> Hook:
        buf = ctx.log_buffer
        table = ctx.table
        per_epoch = table.by == "epoch" if by_epoch is None else by_epoch
        ctx.register_logger(name)
        buf.keep(interval)  # the largest interval of the run's loggers bounds the shared histories
        rank, world = get_dist_info()
        # Other ranks average with rank 0 but write nothing (no files, no console lines).
        backend = make_writer(ctx, per_epoch) if rank == 0 else LogWriter(_nothing, _nothing, _nothing)
        write = backend.write
        average = buf.average if world == 1 else _reduced(buf, ctx)
        resets = [reset_flag]
        opened = [False]

        def record(s: TrainState, out: Mapping[str, Any], *, val_segment: bool = False) -> LogRecord:
            values = dict(out)
            evaluated = EVAL_ITER_KEY in values
            shown = values.pop(EVAL_ITER_KEY, None)
            if val_segment:  # iter-based val, kept apart: numbered by the train iterations done
                return LogRecord("val", s.epoch, s.iter, s.iter, values, per_epoch)
            train = s.mode == "train"
            mode = "train" if train and not evaluated else "val"
            if shown is None:
                shown = s.inner_iter + 1 if per_epoch else s.iter + 1
            return LogRecord(mode, s.epoch + 1 if train else s.epoch, int(shown), s.iter + 1, values, per_epoch)

        def log(s: TrainState) -> None:
            write(s, record(s, buf.output))
            if resets[0]:
                buf.clear_output()

        def close() -> None:
            if opened[0]:
                opened[0] = False
                backend.close()

        def before_run(s: TrainState) -> TrainState:
            # mmcv: the last logger in call order always clears the averages after logging.
            loggers = [h.name for h in ctx.hooks if h.name in ctx.loggers]
            resets[0] = reset_flag or (bool(loggers) and loggers[-1] == name)
            backend.open(s)
            opened[0] = True
            ctx.on_exit.append(close)
            return s

        def after_run(s: TrainState) -> TrainState:
            close()
            return s

        def before_epoch(s: TrainState) -> TrainState:
            buf.clear()
            return s

        def after_train_iter(s: TrainState) -> TrainState:
            n = s.inner_iter + 1 if per_epoch else s.iter + 1
            if n % interval == 0 or (not ignore_last and s.inner_iter + 1 == ctx.loader_len(s.phase)):
                average(interval)
            if buf.ready:
                log(s)
            return s

        def after_train_epoch(s: TrainState) -> TrainState:
            if buf.ready:
                log(s)
            return s

        def after_val_epoch(s: TrainState) -> TrainState:
            average(0)
            log(s)
            return s

        on: dict[str, HookFn] = {
            "before_run": before_run, "after_run": after_run, "before_epoch": before_epoch,
            "after_train_iter": after_train_iter,
        }
        if table.by == "epoch":
            on.update(after_train_epoch=after_train_epoch, after_val_epoch=after_val_epoch)
        elif "val" in table.reachable_modes():
            val_buf = LogBuffer()

            def collect_val(s: TrainState) -> TrainState:
                out = s.outputs
                log_vars = out.get("log_vars")
                if log_vars:
                    val_buf.update(log_vars, out.get("num_samples", 1))
                return s

            val_average = val_buf.average if world == 1 else _reduced(val_buf, ctx)

            def flush_val(s: TrainState) -> TrainState:
                if not val_buf.empty:
                    val_average(0)
                    write(s, record(s, val_buf.output, val_segment=True))
                    val_buf.clear()
                return s

            on.update(after_val_iter=collect_val, before_train_iter=flush_val, after_epoch=flush_val)
        return Hook(name, priority, reachable_only(on, table))

    return factory


__all__ = [
    "EVAL_ITER_KEY", "LogRecord", "LogWriter", "current_momentum", "flush_loggers", "logger_hook", "scalar_tags",
    "writer",
]
