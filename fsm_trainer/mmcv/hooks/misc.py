"""mmcv's small hooks: timer, EMA, empty cache, closure, sampler seed, buffer sync, profiler."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fsm_trainer.hook import Hook as FsmHook
from fsm_trainer.mmcv.hook import Hook, MmcvCompatError
from fsm_trainer.priority import Priority

from ._base import MappedHook, shipped, unwrap

if TYPE_CHECKING:
    from fsm_trainer.context import RunContext


class IterTimerHook(MappedHook):
    """mmcv's ``IterTimerHook()`` (LOW).

    Unsubclassed it runs as :func:`fsm_trainer.hooks.iter_timer_hook`; a subclass runs mmcv's:
    ``data_time`` (from the epoch start or the previous iteration's end to the iteration's
    start) and ``time`` (to its end) into ``runner.log_buffer`` at every train and val iteration.
    """

    default_priority = int(Priority.LOW)

    def __init__(self) -> None:
        self.t = time.time()  # a run resumed inside an epoch has no before_epoch to start the clock

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("iter_timer_hook")(name=name, priority=priority)

    def uses_log_buffer(self) -> bool:
        return True

    def before_epoch(self, runner: Any) -> None:
        self.t = time.time()

    def before_iter(self, runner: Any) -> None:
        runner.log_buffer.update({"data_time": time.time() - self.t})

    def after_iter(self, runner: Any) -> None:
        runner.log_buffer.update({"time": time.time() - self.t})
        self.t = time.time()


class EMAHook(MappedHook):
    """mmcv's ``EMAHook(momentum=0.0002, interval=1, warm_up=100, resume_from=None)``.

    Unsubclassed it runs as :func:`fsm_trainer.hooks.ema_hook` (the averages are the hook's
    state). A subclass runs mmcv's: every parameter's average is a model buffer
    ``ema_<name with dots as underscores>`` (so it is in the model's ``state_dict`` and in every
    checkpoint, and a resumed run continues it exactly), moved by
    ``m = min(momentum ** interval, (1 + iter) / (warm_up + iter))`` after every ``interval``-th
    train iteration, and swapped with the parameter at ``after_train_epoch`` and back at
    ``before_train_epoch`` (epoch-based runs; mmcv swaps nothing in iter-based runs). The buffers
    are registered (as copies of the parameters) when the run starts, before a checkpoint it
    resumes from is loaded. ``resume_from`` (a checkpoint directory or an mmcv ``.pth`` file)
    gives the averages to start from, read in ``before_run``; the model and counters are not
    touched (mmcv resumed the whole runner there).
    """

    def __init__(self, momentum: float = 0.0002, interval: int = 1, warm_up: int = 100,
                 resume_from: str | None = None) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
            msg = f"EMAHook: interval must be a positive int, got {interval!r}"
            raise MmcvCompatError(msg)
        if not 0 < momentum < 1:
            msg = f"EMAHook: momentum must be in (0, 1), got {momentum!r}"
            raise MmcvCompatError(msg)
        self._raw_momentum = momentum
        self.momentum = momentum**interval
        self.interval = interval
        self.warm_up = warm_up
        self.checkpoint = resume_from
        self.param_ema_buffer: dict[str, str] = {}
        self.model_parameters: dict[str, torch.nn.Parameter] = {}
        self.model_buffers: dict[str, torch.Tensor] = {}

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("ema_hook")(self._raw_momentum, self.interval, self.warm_up, self.checkpoint, name=name,
                                   priority=priority)

    def class_fsm(self, ctx: RunContext) -> FsmHook:
        self._register(ctx.model, fresh=True)
        return super().class_fsm(ctx)

    def _register(self, model: Any, *, fresh: bool) -> None:
        """Register an ``ema_*`` buffer per parameter: a copy of it when ``fresh`` or missing."""
        model = unwrap(model)
        self.param_ema_buffer = {}
        self.model_parameters = dict(model.named_parameters(recurse=True))
        existing = dict(model.named_buffers(recurse=True))
        for name, value in self.model_parameters.items():
            buffer_name = f"ema_{name.replace('.', '_')}"
            self.param_ema_buffer[name] = buffer_name
            if fresh or buffer_name not in existing:
                model.register_buffer(buffer_name, value.data.clone())
        self.model_buffers = dict(model.named_buffers(recurse=True))

    def before_run(self, runner: Any) -> None:
        self._register(runner.model, fresh=False)  # kept: the buffers may hold a resumed checkpoint's averages
        if self.checkpoint is not None:
            self._load_averages(self.checkpoint)

    def _load_averages(self, path: str | Path) -> None:
        from fsm_trainer.checkpoint import _numpy_globals, load_checkpoint

        p = Path(path)
        if p.is_dir() or p.with_suffix("").is_dir():
            saved: Any = load_checkpoint(p if p.is_dir() else p.with_suffix("")).model
        else:
            with torch.serialization.safe_globals(_numpy_globals()):
                ckpt = torch.load(p, map_location="cpu", weights_only=True)
            saved = ckpt.get("state_dict", ckpt)
        missing = [b for b in self.param_ema_buffer.values() if b not in saved]
        if missing:
            msg = f"EMAHook: {path} has no averages for {missing[:5]} (ema_* buffers)"
            raise MmcvCompatError(msg)
        with torch.no_grad():
            for b in self.param_ema_buffer.values():
                self.model_buffers[b].copy_(saved[b])

    def after_train_iter(self, runner: Any) -> None:
        curr_step = runner.iter
        momentum = min(self.momentum, (1 + curr_step) / (self.warm_up + curr_step))
        if curr_step % self.interval != 0:
            return
        with torch.no_grad():
            for name, parameter in self.model_parameters.items():
                buffer = self.model_buffers[self.param_ema_buffer[name]]
                buffer.mul_(1 - momentum).add_(parameter.data, alpha=momentum)

    def after_train_epoch(self, runner: Any) -> None:
        self._swap_ema_parameters()

    def before_train_epoch(self, runner: Any) -> None:
        self._swap_ema_parameters()

    def _swap_ema_parameters(self) -> None:
        """Exchange every parameter's value with its average's."""
        with torch.no_grad():
            for name, value in self.model_parameters.items():
                temp = value.data.clone()
                ema_buffer = self.model_buffers[self.param_ema_buffer[name]]
                value.data.copy_(ema_buffer.data)
                ema_buffer.data.copy_(temp)


def empty_cache() -> None:
    """Release the accelerator's cached memory: CUDA's, else Apple MPS's; nothing on a CPU."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif torch.backends.mps.is_available():
        torch.mps.empty_cache()


class EmptyCacheHook(MappedHook):
    """mmcv's ``EmptyCacheHook(before_epoch=False, after_epoch=True, after_iter=False)``.

    Unsubclassed it runs as :func:`fsm_trainer.hooks.empty_cache_hook`; a subclass runs mmcv's
    generic ``before_epoch``/``after_epoch``/``after_iter`` calling :func:`empty_cache`.
    """

    def __init__(self, before_epoch: bool = False, after_epoch: bool = True, after_iter: bool = False) -> None:
        self._before_epoch, self._after_epoch, self._after_iter = before_epoch, after_epoch, after_iter

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("empty_cache_hook")(self._before_epoch, self._after_epoch, self._after_iter, name=name,
                                           priority=priority)

    def after_iter(self, runner: Any) -> None:
        if self._after_iter:
            empty_cache()

    def before_epoch(self, runner: Any) -> None:
        if self._before_epoch:
            empty_cache()

    def after_epoch(self, runner: Any) -> None:
        if self._after_epoch:
            empty_cache()


class ClosureHook(Hook):
    """mmcv's ``ClosureHook(fn_name, fn)``: ``fn(runner)`` at the point ``fn_name``."""

    def __init__(self, fn_name: str, fn: Callable[[Any], None]) -> None:
        if not hasattr(self, fn_name) or fn_name.startswith("_"):
            msg = f"{fn_name!r} is not a hook point"
            raise MmcvCompatError(msg)
        if not callable(fn):
            msg = f"fn must be callable, got {type(fn)}"
            raise TypeError(msg)
        setattr(self, fn_name, fn)


class DistSamplerSeedHook(MappedHook):
    """mmcv's ``DistSamplerSeedHook``: nothing to do, the runner sets the sampler's epoch itself."""

    def fsm_factory(self, name: str, priority: int) -> Any:
        return lambda ctx: FsmHook(name, priority, {})


class SyncBuffersHook(MappedHook):
    """mmcv's ``SyncBuffersHook(distributed=True)``: average the model's buffers over ranks after each epoch.

    Unsubclassed it runs as :func:`fsm_trainer.hooks.sync_buffers_hook`; a subclass runs mmcv's
    ``after_epoch`` (:func:`fsm_trainer.hooks.dist.sync_buffers`, a no-op in one process).
    """

    def __init__(self, distributed: bool = True) -> None:
        self.distributed = distributed

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("sync_buffers_hook")(self.distributed, name=name, priority=priority)

    def after_epoch(self, runner: Any) -> None:
        if self.distributed:
            from fsm_trainer.hooks.dist import sync_buffers

            sync_buffers(unwrap(runner.model))


class ProfilerHook(MappedHook):
    """mmcv's ``ProfilerHook(by_epoch=True, profile_iters=1, activities=None, schedule=None, on_trace_ready=None,
    record_shapes=False, profile_memory=False, with_stack=False, with_flops=False, json_trace_path=None)``.

    ``activities=None`` is mmcv's ``['cpu', 'cuda']`` where CUDA is available, else ``['cpu']``.
    Unsubclassed it runs as :func:`fsm_trainer.hooks.profiler_hook`. A subclass runs mmcv's:
    ``torch.profiler.profile`` entered in ``before_run``, stepped after every train iteration,
    and exited (with ``json_trace_path``, a Chrome trace exported) after the first
    ``profile_iters`` epochs (``by_epoch``) or iterations. ``on_trace_ready`` is a handler, or
    ``dict(type='log_trace', **table_kwargs)`` (the table goes to the runner's logger) or
    ``dict(type='tb_trace', dir_name=...)`` (relative to ``work_dir``, default
    ``tf_tracing_logs``).
    """

    def __init__(self, by_epoch: bool = True, profile_iters: int = 1, activities: Sequence[str] | None = None,
                 schedule: dict[str, int] | None = None,
                 on_trace_ready: Callable[[Any], None] | dict[str, Any] | None = None, record_shapes: bool = False,
                 profile_memory: bool = False, with_stack: bool = False, with_flops: bool = False,
                 json_trace_path: str | None = None) -> None:
        if not isinstance(by_epoch, bool):
            msg = f"ProfilerHook: by_epoch must be a bool, got {by_epoch!r}"
            raise MmcvCompatError(msg)
        if isinstance(profile_iters, bool) or not isinstance(profile_iters, int) or profile_iters < 1:
            msg = f"ProfilerHook: profile_iters must be an int >= 1, got {profile_iters!r}"
            raise MmcvCompatError(msg)
        if activities is None:
            activities = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
        bad = [a for a in activities if str(a).lower() not in ("cpu", "cuda")]
        if isinstance(activities, str) or bad:
            msg = f"ProfilerHook: activities must be a list of 'cpu'/'cuda', got {activities!r}"
            raise MmcvCompatError(msg)
        if not (on_trace_ready is None or callable(on_trace_ready) or isinstance(on_trace_ready, dict)):
            msg = f"ProfilerHook: on_trace_ready must be a handler, a dict or None, got {type(on_trace_ready)}"
            raise MmcvCompatError(msg)
        self.by_epoch = by_epoch
        self.profile_iters = profile_iters
        self.activities = [str(a).lower() for a in activities]
        self.schedule = schedule
        self.on_trace_ready = on_trace_ready
        self.record_shapes, self.profile_memory = record_shapes, profile_memory
        self.with_stack, self.with_flops = with_stack, with_flops
        self.json_trace_path = json_trace_path
        self.profiler: Any = None

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("profiler_hook")(self.by_epoch, self.profile_iters, self.activities, self.schedule,
                                        self.on_trace_ready, record_shapes=self.record_shapes,
                                        profile_memory=self.profile_memory, with_stack=self.with_stack,
                                        with_flops=self.with_flops, json_trace_path=self.json_trace_path, name=name,
                                        priority=priority)

    def _handler(self, runner: Any) -> Callable[[Any], None] | None:
        cfg = self.on_trace_ready
        if cfg is None or callable(cfg):
            return cfg
        cfg = dict(cfg)
        kind = cfg.pop("type", None)
        if kind == "log_trace":
            def log_handler(prof: Any) -> None:
                runner.logger.info("%s", prof.key_averages().table(**cfg))

            return log_handler
        if kind == "tb_trace":
            d = Path(cfg.pop("dir_name", "tf_tracing_logs"))
            if not d.is_absolute() and runner.work_dir is not None:
                d = Path(runner.work_dir) / d
            runner.logger.info("tracing files of ProfilerHook will be saved to %s", d)
            return torch.profiler.tensorboard_trace_handler(str(d), **cfg)  # type: ignore[no-any-return]
        msg = f"ProfilerHook: on_trace_ready type must be 'log_trace' or 'tb_trace', got {kind!r}"
        raise MmcvCompatError(msg)

    def before_run(self, runner: Any) -> None:
        limit = runner.max_epochs if self.by_epoch else runner.max_iters
        if limit is None or limit < self.profile_iters:
            unit = "epochs" if self.by_epoch else "iterations"
            msg = f"ProfilerHook: profile_iters={self.profile_iters} is more than the run's {limit} {unit}"
            raise MmcvCompatError(msg)
        from torch import profiler

        kinds = {"cpu": profiler.ProfilerActivity.CPU, "cuda": profiler.ProfilerActivity.CUDA}
        self.profiler = profiler.profile(
            activities=[kinds[a] for a in self.activities],
            schedule=profiler.schedule(**self.schedule) if self.schedule is not None else None,
            on_trace_ready=self._handler(runner), record_shapes=self.record_shapes,
            profile_memory=self.profile_memory, with_stack=self.with_stack, with_flops=self.with_flops)
        self.profiler.__enter__()
        runner.logger.info("profiler is profiling...")

    def _stop(self, runner: Any) -> None:
        if self.profiler is None:
            return
        prof, self.profiler = self.profiler, None
        runner.logger.info("profiler may take a few minutes...")
        prof.__exit__(None, None, None)
        if self.json_trace_path is not None:
            prof.export_chrome_trace(self.json_trace_path)

    def after_train_epoch(self, runner: Any) -> None:
        if self.by_epoch and runner.epoch == self.profile_iters - 1:
            self._stop(runner)

    def after_train_iter(self, runner: Any) -> None:
        if self.profiler is not None:
            self.profiler.step()
        if not self.by_epoch and runner.iter == self.profile_iters - 1:
            self._stop(runner)

    def after_run(self, runner: Any) -> None:
        self._stop(runner)  # a run shorter than the profiled span


__all__ = ["ClosureHook", "DistSamplerSeedHook", "EMAHook", "EmptyCacheHook", "IterTimerHook", "ProfilerHook",
           "SyncBuffersHook", "empty_cache"]
