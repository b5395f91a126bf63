"""mmcv's ``EvalHook``: run the model on an eval loader, compute metrics, log them, keep the best.

The factory returns two hooks, like the checkpoint hook:

* ``EvalHook`` (LOW, mmcv's usual priority for it, so after the optimizer and checkpoint
  decisions and before the loggers at VERY_LOW) evaluates at ``after_train_epoch`` (``by_epoch``)
  or ``after_train_iter`` every ``interval`` units from ``start``. It writes the metrics into
  the shared log buffer, marked with the eval loader's length, so every logger logs them as a
  ``val`` record at the same point (mmcv writes ``runner.log_buffer.output`` and sets
  ``ready``). Per iteration, it first makes the loggers log that iteration's train values and
  clears the buffer, as mmcv does, so the train and eval records stay apart.
* ``EvalHook.best_writer`` (LOWEST) saves ``best_<key>_epoch_<n>`` / ``best_<key>_iter_<n>``
  (a checkpoint directory, :func:`fsm_trainer.checkpoint.save_checkpoint`) when the score
  improved, after every other hook of the point has run, so the checkpoint holds the hooks'
  updated states and resumes exactly. The previous best is removed only once the new one is
  committed (mmcv deletes it first).

Distributed: give the hook a loader sharded over the ranks (``resumable_loader(...,
shuffle=False, distributed=True)`` or torch's ``DistributedSampler``); every rank predicts its
slice, rank 0 gathers the outputs and targets in dataset order (dropping the samples the
sampler repeated to pad the last round, as mmcv's ``collect_results``), computes the metrics and
sends them to every rank. An unsharded loader is evaluated whole on every rank, and rank 0's
metrics are used. Only rank 0 writes the best checkpoint.

What the hook keeps lives in the state, ``state.hook_states["EvalHook"]``: the last metrics
(``last``), ``key``, ``rule``, ``best_score``, ``best_ckpt`` and ``best_at``. It is saved in
every checkpoint and in :func:`fsm_trainer.serialize.state_to_json`, so the best score
survives a resume (mmcv's iter-based resume lost it, mmengine#1166). ``best_ckpt`` is the
checkpoint's name in the hook's directory, not a path: a run resumed with another work dir
resolves it against its own directory, and removes a previous best only there (never the
best checkpoint of the run it resumed from). The best score and the full path are also put
in ``ctx.meta["hook_msgs"]``, as mmcv does.

``start``: as mmcv, evaluation happens at units ``start, start + interval, ...`` (1-based
counts of completed epochs or iterations), and if the run begins at or after ``start`` the
model is also evaluated once before its first train epoch (iteration). That initial result is
logged but never saved as a best checkpoint (mmcv saves it under the next epoch's name).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import attrs
import torch

from fsm_trainer import counters
from fsm_trainer.checkpoint import remove_checkpoint, save_snapshot
from fsm_trainer.context import RunContext
from fsm_trainer.dist import broadcast_object, collect_outputs, collect_results, get_dist_info, loader_num_replicas
from fsm_trainer.errors import ArgumentTypeError, HookError
from fsm_trainer.hook import Hook, HookFn, resolve_by_epoch
from fsm_trainer.hooks.logger_base import EVAL_ITER_KEY, flush_loggers
from fsm_trainer.metrics import Metric, combine
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState, plain_outputs

GREATER_KEYS = ("acc", "top", "AR@", "auc", "precision", "mAP", "mDice", "mIoU", "mAcc", "aAcc",
                "AP", "AR", "PCK", "pcp", "hmean")
"""Metric names (or parts of names) where higher is better: mmcv's ``_default_greater_keys``, then the
names mmpose's and mmocr's eval hooks add (``AP``, ``AR``, ``PCK``, ``pcp``, ``hmean``)."""
LESS_KEYS = ("loss", "EPE", "NME", "MPJPE")
"""Metric names (or parts) where lower is better: mmcv's ``_default_less_keys``, then mmpose's errors."""
EVAL_HOOK_KEYS = ("test_fn", "pre_eval", "dynamic_intervals", "gpu_collect", "tmpdir", "broadcast_bn_buffer",
                  "efficient_test")
"""``evaluation`` keys the hook itself takes besides its metric and schedule arguments (mmcv's, mmdet's
``dynamic_intervals``, mmseg's ``pre_eval``); every other key goes to ``dataset.evaluate``."""
NO_EFFECT_KEYS = ("gpu_collect", "tmpdir", "broadcast_bn_buffer", "efficient_test")
"""Accepted without effect: results are gathered by :func:`fsm_trainer.dist.collect_results`, BatchNorm buffers
are synchronised by the run (DDP, FSDP) and results stay in memory."""


def infer_rule(key: str, greater_keys: Sequence[str] = GREATER_KEYS, less_keys: Sequence[str] = LESS_KEYS) -> str:
    """``"greater"`` or ``"less"`` for metric ``key``, by mmcv's rules (case-insensitive).

    An exact match wins over a substring match, and ``greater_keys`` over ``less_keys``.

    >>> infer_rule("accuracy"), infer_rule("val_loss"), infer_rule("top5_accuracy"), infer_rule("bbox_mAP")
    ('greater', 'less', 'greater', 'greater')
    >>> infer_rule("f1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fsm_trainer.errors.HookError: cannot infer whether a higher or lower 'f1' is better; give rule=...
    """
    k = key.lower()
    greater = [g.lower() for g in greater_keys]
    less = [x.lower() for x in less_keys]
    if k in greater:
        return "greater"
    if k in less:
        return "less"
    if any(g in k for g in greater):
        return "greater"
    if any(x in k for x in less):
        return "less"
    msg = f"cannot infer whether a higher or lower {key!r} is better; give rule='greater' or rule='less'"
    raise HookError(msg)


def should_evaluate(done: int, interval: int, start: int | None) -> bool:
    """Whether to evaluate once ``done`` epochs (iterations) are complete (mmcv's ``_should_evaluate``).

    >>> [n for n in range(1, 10) if should_evaluate(n, 2, None)]
    [2, 4, 6, 8]
    >>> [n for n in range(1, 10) if should_evaluate(n, 2, 3)]
    [3, 5, 7, 9]
    """
    if start is None:
        return done % interval == 0
    return done >= start and (done - start) % interval == 0


def is_better(score: float, best: float | None, rule: str) -> bool:
    """Whether ``score`` beats ``best`` (``None``: nothing yet) under ``rule``; NaN never does.

    >>> is_better(0.9, None, "greater"), is_better(0.9, 0.95, "greater"), is_better(0.3, 0.5, "less")
    (True, False, True)
    """
    if math.isnan(score):
        return False
    if best is None:
        return True
    return score > best if rule == "greater" else score < best


def _default_predict(model: Any, batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        inputs, targets = batch
        device = next((p.device for p in model.parameters()), None) if hasattr(model, "parameters") else None
        if device is not None and isinstance(inputs, torch.Tensor):
            inputs = inputs.to(device)
        return model(inputs), targets
    msg = (
        f"eval_hook: batches must be (inputs, targets) pairs, got {type(batch).__name__}; "
        "pass predict=(model, batch) -> (outputs, targets)"
    )
    raise ArgumentTypeError(msg)


def _cat(parts: list[Any]) -> Any:
    if parts and all(isinstance(p, torch.Tensor) for p in parts):
        return torch.cat([p.detach().cpu() for p in parts])
    return [x for p in parts for x in (p if isinstance(p, (list, tuple)) else [p])]


def predict_all(
    model: Any, dataloader: Any, predict: Callable[[Any, Any], tuple[Any, Any]] | None = None
) -> tuple[Any, Any]:
    """Outputs and targets of ``model`` over ``dataloader``, concatenated, in eval mode without grad.

    The model's train/eval mode is restored afterwards.
    """
    fn = predict or _default_predict
    was_training = getattr(model, "training", None)
    if hasattr(model, "eval"):
        model.eval()
    outs, targets = [], []
    try:
        with torch.no_grad():
            for batch in dataloader:
                out, tgt = fn(model, batch)
                outs.append(out)
                targets.append(tgt)
    finally:
        if was_training:
            model.train()
    return _cat(outs), _cat(targets)


def _batch_inputs(model: Any, batch: Any) -> Any:
    inputs = batch[0]
    device = next((p.device for p in model.parameters()), None) if hasattr(model, "parameters") else None
    if device is not None and isinstance(inputs, torch.Tensor):
        inputs = inputs.to(device)
    return inputs


def _per_sample(out: Any) -> list[Any]:
    if isinstance(out, torch.Tensor):
        return list(out.detach().cpu())
    if isinstance(out, (list, tuple)):
        return list(out)
    return [out]


def single_gpu_test(model: Any, dataloader: Any, *, pre_eval: bool = False) -> list[Any]:
    """mmcv's ``single_gpu_test``: the per-sample results of ``model`` over ``dataloader``, in eval mode without grad.

    A dict batch is run as ``model(return_loss=False, **batch)`` (mmcv's models), an
    ``(inputs, ...)`` batch as ``model(inputs)``; the output is split into one result per
    sample. ``pre_eval=True`` (mmseg): each batch's results become
    ``dataloader.dataset.pre_eval(results, indices)``, the indices read from the loader's
    batch sampler (else counted in order).
    """
    dataset = getattr(dataloader, "dataset", None)
    batch_sampler = getattr(dataloader, "batch_sampler", None)
    indices_iter = iter(batch_sampler) if pre_eval and batch_sampler is not None else None
    was_training = getattr(model, "training", None)
    if hasattr(model, "eval"):
        model.eval()
    results: list[Any] = []
    seen = 0
    try:
        with torch.no_grad():
            for batch in dataloader:
                if isinstance(batch, Mapping):
                    out = model(return_loss=False, **batch)
                elif isinstance(batch, (list, tuple)) and batch:
                    out = model(_batch_inputs(model, batch))
                else:
                    out = model(batch)
                part = _per_sample(out)
                if pre_eval:
                    indices = list(next(indices_iter)) if indices_iter is not None else list(
                        range(seen, seen + len(part)))
                    part = list(dataset.pre_eval(part, indices=indices))  # type: ignore[union-attr]
                seen += len(part)
                results.extend(part)
    finally:
        if was_training:
            model.train()
    return results


def dynamic_interval(progress: int, interval: int, dynamic_intervals: Sequence[Sequence[int]] | None) -> int:
    """mmdet's ``dynamic_intervals=[(milestone, interval), ...]``: the interval in force once ``progress``
    units (1-based) are done.

    >>> [dynamic_interval(n, 10, [(285, 1)]) for n in (1, 284, 285, 300)]
    [10, 10, 1, 1]
    """
    if not dynamic_intervals:
        return interval
    milestones = [0, *(int(m) for m, _ in dynamic_intervals)]
    intervals = [interval, *(int(i) for _, i in dynamic_intervals)]
    step = bisect.bisect(milestones, progress)
    return intervals[step - 1] if step > 0 else interval


def _dynamic_errors(dynamic_intervals: Any) -> str | None:
    if dynamic_intervals is None:
        return None
    ok = isinstance(dynamic_intervals, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x > 0
                                                              for x in p) for p in dynamic_intervals)
    if not ok:
        return ("dynamic_intervals must be a list of (milestone, interval) pairs of positive ints, "
                f"got {dynamic_intervals!r}")
    milestones = [p[0] for p in dynamic_intervals]
    if milestones != sorted(milestones):
        return f"dynamic_intervals milestones must increase, got {milestones}"
    return None


def dataset_evaluates(dataloader: Any) -> bool:
    """Whether the loader's dataset has mmcv's ``evaluate(results, logger=..., **eval_kwargs)``."""
    return callable(getattr(getattr(dataloader, "dataset", None), "evaluate", None))


_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def eval_hook(
    dataloader: Any,
    metric: str | Metric | Sequence[str | Metric] | None = None,
    *,
    interval: int = 1,
    by_epoch: bool | None = None,
    start: int | None = None,
    save_best: str | None = None,
    rule: str | None = None,
    predict: Callable[[Any, Any], tuple[Any, Any]] | None = None,
    greater_keys: Sequence[str] = GREATER_KEYS,
    less_keys: Sequence[str] = LESS_KEYS,
    out_dir: str | Path | None = None,
    test_fn: Callable[[Any, Any], Sequence[Any]] | None = None,
    pre_eval: bool = False,
    dynamic_intervals: Sequence[Sequence[int]] | None = None,
    eval_kwargs: Mapping[str, Any] | None = None,
    gpu_collect: bool = False,
    tmpdir: str | None = None,
    broadcast_bn_buffer: bool = True,
    efficient_test: bool = False,
    name: str = "EvalHook",
    priority: int | str = Priority.LOW,
) -> Callable[[RunContext], list[Hook]]:
    """mmcv's ``EvalHook`` as a factory for :func:`fsm_trainer.run`.

    Args:
        dataloader: the eval loader (any iterable of batches).
        metric: a built-in name (``"accuracy"``, ``"top5"``, ``"cross_entropy"``), a function
            ``(outputs, targets) -> {name: value}``, or a list of these (:mod:`fsm_trainer.metrics`).
        interval: evaluate every ``interval`` epochs (``by_epoch``) or train iterations.
        by_epoch: evaluate after train epochs; defaults to the table's kind (an iter-based
            table only allows ``False``).
        start: the first epoch (iteration) to evaluate after, 1-based; see the module docstring.
        save_best: a metric name, or ``"auto"`` for the first metric returned; keeps the best
            checkpoint in ``out_dir`` (default: the run's ``work_dir``).
        rule: ``"greater"`` or ``"less"``; inferred from the key when ``None`` (:func:`infer_rule`).
        predict: ``(model, batch) -> (outputs, targets)``; default: ``model(inputs)`` for
            ``(inputs, targets)`` batches, inputs moved to the model's device.
        greater_keys, less_keys: the substrings :func:`infer_rule` uses.
        test_fn: mmcv's ``test_fn(model, dataloader) -> results`` for a dataset with ``evaluate``
            (default :func:`single_gpu_test`).
        pre_eval: mmseg's per-batch ``dataset.pre_eval(results, indices)`` (see :func:`single_gpu_test`).
        dynamic_intervals: mmdet's ``[(milestone, interval), ...]`` (:func:`dynamic_interval`).
        eval_kwargs: more keyword arguments of ``dataset.evaluate`` (mmcv: every ``evaluation``
            key the hook does not take).
        gpu_collect, tmpdir, broadcast_bn_buffer, efficient_test: mmcv's, accepted without effect.
        name, priority: of the evaluating hook (the writer is ``<name>.best_writer`` at LOWEST).

    When the loader's dataset has ``evaluate`` (mmcv's protocol), the hook collects the
    per-sample results and calls ``dataset.evaluate(results, logger=<run logger>, metric=metric,
    **eval_kwargs)`` (``metric`` only when given), as mmcv 1.7.2's ``EvalHook``; ``save_best``
    and ``rule`` apply to whatever keys it returns. Otherwise the built-in metrics are used
    (``metric`` default ``"accuracy"``).

    Raises:
        fsm_trainer.HookError: (a ``ValueError``) a bad ``interval``, ``start``, ``rule`` or
            metric name, or a ``save_best`` key whose rule cannot be inferred (when the factory
            is called); ``by_epoch=True`` in an iter-based run, or ``save_best``
            without a directory (when the hook is built); ``save_best`` names a key the
            metrics do not return (at the first evaluation).
    """
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        msg = f"interval must be a positive int, got {interval!r}"
        raise HookError(msg)
    if start is not None and (isinstance(start, bool) or not isinstance(start, int) or start < 0):
        msg = f"start must be None or an int >= 0, got {start!r}"
        raise HookError(msg)
    if rule not in (None, "greater", "less"):
        msg = f"rule must be 'greater', 'less' or None, got {rule!r}"
        raise HookError(msg)
    if save_best is not None and not isinstance(save_best, str):
        msg = f"save_best must be a metric name, 'auto' or None, got {save_best!r}"
        raise HookError(msg)
    del gpu_collect, tmpdir, broadcast_bn_buffer, efficient_test
    problem = _dynamic_errors(dynamic_intervals)
    if problem is not None:
        raise HookError(problem)
    if not isinstance(pre_eval, bool):
        msg = f"pre_eval must be True or False, got {pre_eval!r}"
        raise HookError(msg)
    by_dataset = dataset_evaluates(dataloader)
    kwargs_for_evaluate = dict(eval_kwargs or {})
    if metric is not None:
        kwargs_for_evaluate["metric"] = metric
    compute: Metric | None = None
    if not by_dataset:
        try:
            compute = combine("accuracy" if metric is None else metric)
        except ValueError:
            if dataloader is not None:
                raise
        if dataloader is not None and (eval_kwargs or pre_eval or test_fn is not None):
            given = sorted([*(eval_kwargs or {}), *(["pre_eval"] if pre_eval else []),
                            *(["test_fn"] if test_fn is not None else [])])
            msg = (f"{', '.join(given)}: only for a dataset with evaluate() (mmcv's protocol); "
                   f"{type(getattr(dataloader, 'dataset', None)).__name__} has none")
            raise HookError(msg)
    fixed_rule = rule
    if save_best not in (None, "auto") and fixed_rule is None:
        fixed_rule = infer_rule(save_best, greater_keys, less_keys)

    def factory(ctx: RunContext) -> list[Hook]:
        table = ctx.table
        per_epoch = resolve_by_epoch(name, by_epoch, table)
        directory: Path | None = None
        if save_best is not None:
            if out_dir is not None:
                directory = Path(out_dir) / ctx.work_dir.name if ctx.work_dir is not None else Path(out_dir)
            elif ctx.work_dir is not None:
                directory = ctx.work_dir
            else:
                msg = f"{name}: save_best needs run(..., work_dir=...) or out_dir="
                raise HookError(msg)
        buf = ctx.log_buffer
        unit = "epoch" if per_epoch else "iter"
        initial = [start is not None]
        pending: list[tuple[str, str | None]] = []  # (checkpoint name, previous best path)

        rank, world = get_dist_info()
        sharded = world > 1 and loader_num_replicas(dataloader) > 1

        def dataset_metrics() -> dict[str, Any]:
            dataset = dataloader.dataset
            if test_fn is not None:
                results: Any = list(test_fn(ctx.model, dataloader))
            else:
                results = single_gpu_test(ctx.model, dataloader, pre_eval=pre_eval)
            if world > 1:
                if sharded:  # each rank has its slice (padded): rank 0 puts them back in dataset order
                    results = collect_results(results, len(dataset))
                if rank != 0:
                    return cast("dict[str, Any]", broadcast_object(None))
            out = dict(dataset.evaluate(results, logger=ctx.logger, **kwargs_for_evaluate))
            return broadcast_object(out) if world > 1 else out

        def metrics() -> dict[str, Any]:
            if compute is None:
                return dataset_metrics()
            outputs, targets = predict_all(ctx.model, dataloader, predict)
            if world == 1:
                return dict(compute(outputs, targets))
            if sharded:  # each rank saw its slice (padded): rank 0 puts them back in dataset order
                size = len(dataloader.dataset)
                outputs, targets = collect_outputs(outputs, size), collect_outputs(targets, size)
            # Rank 0's metrics for every rank, so the hook states (best score...) stay equal.
            return cast("dict[str, Any]", broadcast_object(dict(compute(outputs, targets)) if rank == 0 else None))

        def evaluate(s: TrainState, done: int, *, may_save: bool) -> TrainState:
            results = metrics()
            buf.output.update(results)
            buf.output[EVAL_ITER_KEY] = _length(dataloader)
            buf.ready = True
            kept = dict(s.hook_states.get(name) or {})
            kept["last"] = {unit: done, "metrics": results}
            if save_best is not None and results:
                key = kept.get("key") or (next(iter(results)) if save_best == "auto" else save_best)
                if key not in results:
                    msg = f"{name}: save_best={key!r} is not among the metrics {sorted(results)}"
                    raise HookError(msg)
                kept["key"] = key
                kept["rule"] = kept.get("rule") or fixed_rule or infer_rule(key, greater_keys, less_keys)
                score = float(results[key])
                if may_save and is_better(score, kept.get("best_score"), kept["rule"]):
                    ckpt = f"best_{_UNSAFE.sub('_', key)}_{unit}_{done}"
                    assert directory is not None
                    pending.append((ckpt, kept.get("best_ckpt")))
                    kept.update(best_score=score, best_ckpt=ckpt, best_at=done)
                    msgs = ctx.meta.setdefault("hook_msgs", {})
                    msgs["best_score"], msgs["best_ckpt"] = score, str(directory / ckpt)
            return s.with_hook_state(name, kept)

        def after_train_epoch(s: TrainState) -> TrainState:
            if should_evaluate(s.epoch + 1, dynamic_interval(s.epoch + 1, interval, dynamic_intervals), start):
                s = evaluate(s, s.epoch + 1, may_save=True)
            return s

        def after_train_iter(s: TrainState) -> TrainState:
            if should_evaluate(s.iter + 1, dynamic_interval(s.iter + 1, interval, dynamic_intervals), start):
                # mmcv: log this iteration's train values first, then start the eval record afresh.
                s = flush_loggers(ctx, s, "after_train_iter")
                buf.clear()
                s = evaluate(s, s.iter + 1, may_save=True)
            return s

        def before_train_epoch(s: TrainState) -> TrainState:
            if initial[0]:
                initial[0] = False
                if start is not None and s.epoch >= start:
                    s = flush_loggers(ctx, evaluate(s, s.epoch, may_save=False), "after_train_epoch")
            return s

        def before_train_iter(s: TrainState) -> TrainState:
            if initial[0]:
                initial[0] = False
                if start is not None and s.iter >= start:
                    s = flush_loggers(ctx, evaluate(s, s.iter, may_save=False), "after_train_iter")
            return s

        # ------------------------------------------------ the best-checkpoint writer (LOWEST)

        def write_best(s: TrainState, resume_at: Callable[[], TrainState]) -> TrainState:
            if not pending:
                return s
            ckpt, previous = pending.pop()
            pending.clear()
            assert directory is not None
            path = save_snapshot(ctx, resume_at(), directory, ckpt, update_latest=False)
            old = _own_checkpoint(directory, previous)
            if rank == 0 and old is not None and old != path and old.exists():
                remove_checkpoint(old)
                ctx.logger.info("The previous best checkpoint %s was removed", old)
            kept = s.hook_states[name]
            ctx.logger.info("Now best checkpoint is saved as %s.", path.name)
            ctx.logger.info("Best %s is %.4f at %d %s.", kept["key"], kept["best_score"], kept["best_at"], unit)
            return s

        def after_epoch_state(s: TrainState) -> TrainState:
            if s.stop:  # the run ends here: the position is not moved past this epoch
                return counters.epoch_done(attrs.evolve(s, outputs=plain_outputs(s.outputs)))
            return counters.resume_position(table, s, "after_train_epoch")

        def after_iter_state(s: TrainState) -> TrainState:
            if s.stop:
                return counters.iteration_done(attrs.evolve(s, outputs=plain_outputs(s.outputs)))
            return counters.resume_position(table, s, "after_train_iter")

        on: dict[str, HookFn]
        writer_on: dict[str, HookFn]
        if per_epoch:
            on = {"after_train_epoch": after_train_epoch}
            if start is not None:
                on["before_train_epoch"] = before_train_epoch
            writer_on = {"after_train_epoch": lambda s: write_best(s, lambda: after_epoch_state(s))}
        else:
            on = {"after_train_iter": after_train_iter}
            if start is not None:
                on["before_train_iter"] = before_train_iter
            writer_on = {"after_train_iter": lambda s: write_best(s, lambda: after_iter_state(s))}
        hooks = [Hook(name, priority, on)]
        if save_best is not None:
            hooks.append(Hook(f"{name}.best_writer", Priority.LOWEST, writer_on))
        return hooks

    return factory


def _own_checkpoint(directory: Path, saved: str | None) -> Path | None:
    """The previous best checkpoint ``saved`` (a name in ``directory``) if it lies in ``directory``.

    Older states hold a full path; one into another directory (a run resumed from another
    work dir) is never this run's to remove.

    >>> _own_checkpoint(Path("/runs/b"), "best_acc_epoch_3")
    PosixPath('/runs/b/best_acc_epoch_3')
    >>> _own_checkpoint(Path("/runs/b"), "/runs/a/best_acc_epoch_3") is None
    True
    """
    if not saved:
        return None
    path = Path(saved)
    if not path.is_absolute() and len(path.parts) == 1 and path.name not in (".", ".."):
        return directory / path
    try:
        same = path.parent.resolve() == directory.resolve()
    except OSError:
        return None
    return directory / path.name if same and path.name not in ("", ".", "..") else None


def _length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def eval_state(state: TrainState, name: str = "EvalHook") -> Mapping[str, Any]:
    """What the eval hook ``name`` keeps in ``state`` (``{}`` before its first evaluation).

    >>> eval_state(TrainState())
    {}
    """
    return state.hook_states.get(name) or {}


__all__ = [
    "EVAL_HOOK_KEYS", "GREATER_KEYS", "LESS_KEYS", "NO_EFFECT_KEYS", "dataset_evaluates", "dynamic_interval",
    "eval_hook", "eval_state", "infer_rule", "is_better", "predict_all", "should_evaluate", "single_gpu_test",
]
