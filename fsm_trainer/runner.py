"""``run``: drive a transition table with hooks, a model and loaders (the imperative shell).

The loop itself (event order, stops, resuming inside an epoch) is
:class:`fsm_trainer.loop.Loop`, shared with the dry run :func:`fsm_trainer.simulate.simulate`;
this module gives it the model's steps and effects: the device, train/eval mode,
``torch.no_grad()`` for val phases, distributed wrappers, ``torch.compile``, the checkpoint to
resume from, and cleanup when the run ends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from fsm_trainer.context import RunContext
from fsm_trainer.data import IterLoader
from fsm_trainer.errors import ArgumentTypeError, HookError, WorkflowError
from fsm_trainer.hook import ComposedHooks, Hook, HookFn, compose_hooks, reachable_only
from fsm_trainer.loop import Loop
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState
from fsm_trainer.step import StepFn, bad_outputs, make_steps
from fsm_trainer.transitions import TransitionTable, continue_finished

HookLike = Hook | Callable[[RunContext], "Hook | Sequence[Hook]"]


def _log_vars_hook(ctx: RunContext) -> Hook:
    buf = ctx.log_buffer

    def collect(s: TrainState) -> TrainState:
        out = s.outputs
        log_vars = out.get("log_vars")
        if log_vars is not None:
            buf.update(log_vars, out.get("num_samples", 1))
        return s

    on = {"after_train_iter": collect}
    if ctx.table.by == "epoch":  # iter-based val averages are kept apart by the loggers
        on["after_val_iter"] = collect
    return Hook("LogVarsCollector", Priority.HIGHEST, reachable_only(on, ctx.table))


def build_hooks(hooks: Iterable[HookLike], ctx: RunContext) -> list[Hook]:
    """Resolve hook factories against ``ctx``; add the ``log_vars`` collector if a logger needs it."""
    built: list[Hook] = []
    for i, h in enumerate(hooks):
        if isinstance(h, Hook):
            built.append(h)
            continue
        if not callable(h):
            msg = f"hooks[{i}] is neither a Hook nor a hook factory (ctx -> Hook): {h!r}"
            raise HookError(msg)
        made = h(ctx)
        items = [made] if isinstance(made, Hook) else list(made)
        for m in items:
            if not isinstance(m, Hook):
                msg = f"hooks[{i}]: the factory {h!r} returned {m!r}, not a Hook"
                raise HookError(msg)
        built.extend(items)
    if ctx.uses_log_buffer:
        built.insert(0, _log_vars_hook(ctx))
    return built


def _check_loaders(table: TransitionTable, data_loaders: Sequence[Any]) -> None:
    if isinstance(data_loaders, (str, bytes)) or not isinstance(data_loaders, Sequence):
        msg = f"data_loaders must be a list with one loader per workflow entry, got {type(data_loaders).__name__}"
        raise WorkflowError(msg)
    if len(data_loaders) != len(table.workflow):
        msg = (
            f"got {len(data_loaders)} data loaders for a workflow of {len(table.workflow)} entries "
            f"{list(table.workflow)!r}; give one loader per entry"
        )
        raise WorkflowError(msg)
    for i, loader in enumerate(data_loaders):
        if not isinstance(loader, Iterable):
            msg = f"data_loaders[{i}] is not iterable: {loader!r}"
            raise WorkflowError(msg)


def run(
    state: TrainState,
    table: TransitionTable,
    *,
    data_loaders: Sequence[Any],
    model: Any = None,
    optimizer: Any = None,
    hooks: Iterable[HookLike] = (),
    work_dir: str | Path | None = None,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    batch_processor: Callable[..., Mapping[str, Any]] | None = None,
    train_step: StepFn | None = None,
    val_step: StepFn | None = None,
    strict: bool = False,
    logger: logging.Logger | None = None,
    meta: dict[str, Any] | None = None,
    resume: str | Path | None = None,
    resume_strict: bool = True,
    distributed: bool | str = False,
    device: str | torch.device | None = "auto",
    compile: bool | Mapping[str, Any] = False,
) -> TrainState:
    """Run ``table`` from ``state`` and return the final state (plain data: ``outputs`` keeps
    ``log_vars`` and ``num_samples`` as numbers, see :meth:`TrainState.plain`).

    Args:
        state: where to start; ``TrainState()`` for a new run.
        table: from :func:`~fsm_trainer.compile_workflow`.
        data_loaders: one iterable per workflow entry.
        model: an mmcv-style model (``train_step``/``val_step``) or an ``nn.Module``.
        optimizer: passed to ``train_step`` and reached by the optimizer hook.
        hooks: :class:`~fsm_trainer.Hook` objects, or factories ``ctx -> Hook | [Hook]`` (the
            shipped hooks in :mod:`fsm_trainer.hooks` are factories).
        work_dir: where hooks write files; created if missing.
        loss_fn: for a plain ``nn.Module`` fed ``(inputs, targets)`` batches.
        batch_processor: mmcv's ``batch_processor(model, batch, train_mode)``.
        train_step: an explicit train step function ``batch -> outputs`` (overrides the above).
        val_step: an explicit val step function ``batch -> outputs`` (overrides the above).
        strict: raise instead of warn for hooks on points the table never reaches.
        logger: where the hook order and logs go (default ``logging.getLogger("fsm_trainer")``).
        meta: free-form run metadata kept in the context (config, seed...).
        resume: ``"auto"`` (the newest valid checkpoint in the checkpoint hook's directory or
            ``work_dir``; a new run from ``state`` if there is none), or the path of a
            checkpoint, of a directory of checkpoints, or of a ``latest`` file. The
            checkpoint's state replaces ``state``.
        resume_strict: refuse a checkpoint whose model keys or shapes differ from ``model``.
        distributed: data-parallel training on the current process group
            (:func:`fsm_trainer.dist.init_dist` first; see the README's distributed section).
            ``True`` or ``"ddp"``: ``model`` is wrapped in DistributedDataParallel and the train
            steps go through the wrapper; hooks, checkpoints and ``ctx.model`` see the
            unwrapped model. ``"fsdp"``: ``model`` is sharded in place with FSDP
            (:func:`fsm_trainer.dist.shard_model`) and ``optimizer`` is rebuilt on the sharded
            parameters (``ctx.optimizer`` is the one in use; it must have no state yet);
            checkpoints hold full, unsharded state dicts. Give train loaders sharded over the
            ranks (``resumable_loader(..., distributed=True)``). Logging and checkpoint hooks
            are rank-aware whenever a process group of several ranks exists, with or without
            this flag.
        device: where to train (:mod:`fsm_trainer.device`). ``"auto"``: the accelerator the
            model is already on, else CUDA's ``LOCAL_RANK`` device (distributed) or current
            device when CUDA is available, else the CPU; without an ``nn.Module`` model
            (explicit steps only), nothing is moved. ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a
            ``torch.device``: that device. ``None``: nothing is moved (a model whose
            ``train_step`` moves its own batches). The model is moved once, before a
            checkpoint is loaded into it and before ``distributed`` wraps it; on an
            accelerator each batch is moved before the step (:func:`~fsm_trainer.device.move_batch`:
            tensors in tuples, lists, dicts, namedtuples, dataclass and attrs records, objects
            with ``.to()``; ``non_blocking`` for pinned batches). On the CPU batches are not
            touched. During the loop the device is CUDA's current device.
        compile: ``True`` or a dict of ``torch.compile`` arguments: for the run, the model's
            ``forward`` is ``torch.compile(model.forward, **options)``
            (:func:`~fsm_trainer.device.compile_model`), so every forward, also the one inside
            an mmcv-style ``train_step``, is compiled, while hooks and checkpoints see the same
            module with the same ``state_dict`` keys (no ``_orig_mod.`` prefix) and resuming
            works as without it; the plain ``forward`` is back when the run ends. A
            ``torch.compile(model)`` result given as ``model`` is unwrapped for hooks and
            checkpoints; ``loss_fn`` and ``batch_processor`` steps call the compiled wrapper.

    Raises:
        WorkflowError: loaders do not match the workflow (before any data is touched).
        HookError: a hook is invalid (before any data is touched).
        TypeError: a step or a hook returns something other than documented.
        fsm_trainer.checkpoint.CheckpointError: ``resume`` names a missing or invalid
            checkpoint, or one of another workflow or model (before any data is touched).
        fsm_trainer.device.DeviceError: ``device`` or ``compile`` is invalid, or the device
            is not available here (before any data is touched).
    """
    _check_loaders(table, data_loaders)
    from fsm_trainer import device as devices
    from fsm_trainer.dist import check_strategy, is_dist

    strategy = check_strategy(distributed)
    compile_kw = devices.compile_options(compile)
    if compile_kw is not None and not isinstance(devices.unwrap_compiled(model), torch.nn.Module):
        msg = f"compile= needs an nn.Module model, got {type(model).__name__}"
        raise devices.DeviceError(msg)
    if not isinstance(state, TrainState):
        msg = f"state must be a TrainState, got {type(state).__name__}"
        raise ArgumentTypeError(msg)
    wd = Path(work_dir) if work_dir is not None else None
    stepped = model
    model = devices.unwrap_compiled(model)  # hooks and checkpoints see the plain module
    dev = devices.resolve_device(device, model=model, distributed=strategy is not None or is_dist())
    log = logger or logging.getLogger("fsm_trainer")
    if devices.place_model(model, dev, optimizer):
        log.info("model moved to %s", dev)
    parallel = None
    if strategy is not None:
        from fsm_trainer.dist import prepare

        if dev is not None and dev.type == "cuda" and dev.index != torch.cuda.current_device():
            msg = (f"device={str(dev)!r}, but distributed training wraps the model on CUDA's current device "
                   f"cuda:{torch.cuda.current_device()} (init_dist sets it from LOCAL_RANK); leave device='auto'")
            raise devices.DeviceError(msg)
        stepped = model
        prepared = prepare(model, optimizer, data_loaders, table.workflow, log, strategy=strategy)
        parallel, optimizer = prepared.parallel, prepared.optimizer
    # The run's resources are fixed from here on (the optimizer is the one in use).
    ctx = RunContext(table, data_loaders, model, optimizer, wd, log, dict(meta or {}), parallel_model=parallel,
                     device=dev)
    if train_step is None or val_step is None:
        if model is None and batch_processor is None:
            msg = ("give a model (with train_step/val_step, or with loss_fn), batch_processor, "
                   "or train_step= and val_step=")
            raise ArgumentTypeError(msg)
        made = make_steps(stepped, optimizer, loss_fn=loss_fn, batch_processor=batch_processor, by=table.by,
                          parallel=parallel)
        train_step = train_step or made[0]
        val_step = val_step or made[1]
        if getattr(val_step, "missing_val_step", False) and "val" in table.reachable_modes():
            msg = (f"model {type(model).__name__} has no val_step, but the workflow {list(table.workflow)!r} has a "
                   "val phase; give the model a val_step, or val_step=, loss_fn= or batch_processor=")
            raise ArgumentTypeError(msg)
    amp = getattr(train_step, "amp", None)
    if amp is not None and dev is not None and amp.device_type != dev.type:
        ctx.logger.warning("the train step autocasts on %s but the run trains on %s: autocast has no effect there",
                           amp.device_type, dev)
    # Built once per run: on the CPU and with device=None the steps stay as they are.
    train_step, val_step = devices.batches_to(train_step, dev), devices.batches_to(val_step, dev)
    composed = compose_hooks(build_hooks(hooks, ctx), table, strict=strict)
    if optimizer is not None and not any("optimizer" in h.name.lower() for h in composed.order["after_train_iter"]) \
            and "train" in table.reachable_modes():
        ctx.logger.warning("an optimizer was given but no hook steps it (no optimizer hook at after_train_iter): the "
                           "weights change only if the train step updates them itself; add optimizer_hook()")
    ctx.layout.hooks = composed.hooks
    restorer = None
    if resume is not None:
        from fsm_trainer.checkpoint import Restorer

        restorer = Restorer.find(resume, ctx, strict=resume_strict)
        if restorer is not None:
            state = _rescaled(restorer, restorer.ckpt.state, table, ctx.logger)
            extended = continue_finished(restorer.ckpt.table, table, state)
            if extended is not state:
                limit = f"max_epochs={table.max_epochs}" if table.by == "epoch" else f"max_iters={table.max_iters}"
                ctx.logger.info("the checkpoint's run had finished; continuing it to %s at %s", limit,
                                table.node_name(extended.phase))
                state = extended
    if wd is not None:
        wd.mkdir(parents=True, exist_ok=True)
    ctx.logger.debug("hooks will be executed in the following order:\n%s", composed)
    undo_compile = devices.compile_model(model, compile) if compile_kw is not None else None
    if undo_compile is not None:
        ctx.on_exit.insert(0, undo_compile)  # runs last
        ctx.logger.info("model forward compiled with torch.compile(%s)",
                        ", ".join(f"{k}={v!r}" for k, v in compile_kw.items()))  # type: ignore[union-attr]
    failed: BaseException | None = None
    try:
        # Plain data out: the last step's loss tensor (and its graph) does not outlive the run.
        with devices.device_scope(dev):
            return _loop(table, composed, ctx, train_step, val_step, restorer).run(state).plain()
    except BaseException as exc:
        failed = exc
        raise
    finally:
        # Every callback runs (last registered first) whatever the others raise. A training
        # error stays the one raised, with the cleanup errors noted on it; after a run that
        # succeeded, the last cleanup error is raised, the earlier ones chained as its context.

        def chained(fn: Callable[[], None]) -> Callable[[Any, BaseException | None, Any], None]:
            def call(_type: Any, pending: BaseException | None, _tb: Any) -> None:
                try:
                    fn()
                except BaseException as exc:
                    if exc.__context__ is None:
                        exc.__context__ = pending
                    raise

            return call

        try:
            with contextlib.ExitStack() as stack:
                for fn in ctx.on_exit:
                    stack.push(chained(fn))
        except BaseException as cleanup:
            if failed is None:
                raise
            note = getattr(failed, "add_note", None)
            err: BaseException | None = cleanup
            while err is not None and err is not failed and note is not None:
                note(f"an on_exit callback also failed during cleanup: {type(err).__name__}: {err}")
                err = err.__context__


def _loop(table: TransitionTable, composed: ComposedHooks, ctx: RunContext, train_step: StepFn, val_step: StepFn,
          restorer: Any) -> Loop:
    model = ctx.model if hasattr(ctx.model, "train") else None

    def scope(mode: str) -> contextlib.AbstractContextManager[Any]:
        if model is not None:
            model.train(mode == "train")
        return torch.no_grad() if mode == "val" else contextlib.nullcontext()

    def keep(iter_loaders: list[IterLoader]) -> None:
        ctx.layout.iter_loaders = iter_loaders

    if ctx.before_step:
        train_step, val_step = _after(ctx.before_step, train_step), _after(ctx.before_step, val_step)
    return Loop(table, composed.fns, ctx.data_loaders, {"train": train_step, "val": val_step}, scope=scope,
                restorer=restorer, logger=ctx.logger, on_iter_loaders=keep, bad_outputs=bad_outputs)


def _after(calls: list[Callable[[], None]], step: StepFn) -> StepFn:
    """``step`` preceded by ``calls`` (``RunContext.before_step``)."""
    if len(calls) == 1:
        (call,) = calls

        def one(batch: Any) -> Any:
            call()
            return step(batch)

        return one

    def each(batch: Any) -> Any:
        for c in calls:
            c()
        return step(batch)

    return each


def _rescaled(restorer: Any, s: TrainState, table: TransitionTable, logger: logging.Logger) -> TrainState:
    """A mid-epoch state saved by another number of ranks, as a position on this run's ranks."""
    k = restorer.start_batches(s.inner_iter)
    if table.by != "epoch" or k == s.inner_iter or s.phase < 0 or table.workflow[s.phase][0] != "train":
        return s
    logger.warning(
        "the checkpoint was saved by %d ranks mid-epoch after %d batches per rank; on this run's ranks the "
        "epoch continues after %d batches per rank (no sample twice; the rest of the epoch is sharded anew)",
        restorer.saved_world_size(), s.inner_iter, k,
    )
    return attrs.evolve(s, inner_iter=k)


__all__ = ["HookFn", "HookLike", "run"]
