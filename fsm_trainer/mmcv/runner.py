"""mmcv 1.7.2's ``EpochBasedRunner`` and ``IterBasedRunner`` API over :func:`fsm_trainer.run`.

The runner object collects hooks (``register_training_hooks``, ``register_hook``...) and, in
:meth:`BaseRunner.run`, compiles the workflow into a transition table and calls
:func:`fsm_trainer.run`. During the run it is the ``runner`` every class hook receives
(a :class:`~fsm_trainer.mmcv.hook.RunnerView`); afterwards it shows the final counters.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import attrs

from fsm_trainer.hook import Hook as FsmHook
from fsm_trainer.mmcv.hook import STAGES, Hook, LogBufferView, MmcvCompatError, RunnerView, attach_view
from fsm_trainer.mmcv.registry import HOOKS, RUNNERS, build_from_cfg
from fsm_trainer.priority import Priority, get_priority
from fsm_trainer.state import TrainState

_PRE = {"model", "optimizer", "logger", "meta", "work_dir", "batch_processor", "_max_epochs", "_max_iters",
        "max_epochs", "max_iters", "epoch", "iter", "inner_iter", "_epoch", "_iter", "_inner_iter", "mode", "timestamp"}


def _with_priority(made: Any, priority: int) -> Any:
    if isinstance(made, FsmHook):
        return attrs.evolve(made, priority=priority)
    if isinstance(made, (list, tuple)):
        return [_with_priority(m, priority) for m in made]
    return made


class BaseRunner(RunnerView):
    """mmcv's ``BaseRunner`` constructor and hook registration; see :class:`EpochBasedRunner`."""

    by: str = "epoch"
    _pre: dict[str, Any]
    _start: TrainState
    _registered: list[tuple[Any, int]]
    _resume_from: Any
    _own_buffer: Any

    def __init__(self, model: Any, batch_processor: Callable[..., Any] | None = None, optimizer: Any = None,
                 work_dir: str | None = None, logger: logging.Logger | None = None,
                 meta: dict[str, Any] | None = None, max_iters: int | None = None,
                 max_epochs: int | None = None) -> None:
        super().__init__()
        if batch_processor is not None:
            if not callable(batch_processor):
                msg = f"batch_processor must be callable, but got {type(batch_processor)}"
                raise TypeError(msg)
            inner = getattr(model, "module", model)
            if hasattr(inner, "train_step") or hasattr(inner, "val_step"):
                msg = "batch_processor and model.train_step()/model.val_step() cannot be both available."
                raise RuntimeError(msg)
        if logger is not None and not isinstance(logger, logging.Logger):
            msg = f"logger must be a logging.Logger object, but got {type(logger)}"
            raise TypeError(msg)
        if meta is not None and not isinstance(meta, dict):
            msg = f"meta must be a dict or None, but got {type(meta)}"
            raise TypeError(msg)
        if max_epochs is not None and max_iters is not None:
            msg = "Only one of `max_epochs` or `max_iters` can be set."
            raise ValueError(msg)
        if work_dir is not None and not isinstance(work_dir, (str, Path)):
            msg = '"work_dir" must be a str or None'
            raise TypeError(msg)
        import time

        pre = {
            "model": model, "batch_processor": batch_processor, "optimizer": optimizer,
            "work_dir": None if work_dir is None else str(Path(work_dir).absolute()),
            "logger": logger if logger is not None else logging.getLogger("fsm_trainer"),
            "meta": meta, "_max_epochs": max_epochs, "_max_iters": max_iters,
            "timestamp": time.strftime("%Y%m%d_%H%M%S"),
        }
        object.__setattr__(self, "_pre", pre)
        object.__setattr__(self, "_start", TrainState())
        object.__setattr__(self, "_registered", [])
        object.__setattr__(self, "_resume_from", None)
        object.__setattr__(self, "_own_buffer", None)
        if pre["work_dir"] is not None:
            Path(pre["work_dir"]).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ attributes before/after a run

    def __setattr__(self, name: str, value: Any) -> None:
        if self._hook is None and name in _PRE:
            key = name.lstrip("_") if name in ("_epoch", "_iter", "_inner_iter") else name
            if key in ("epoch", "iter", "inner_iter"):
                changed: dict[str, Any] = {key: int(value)}
                object.__setattr__(self, "_start", attrs.evolve(self._start, **changed))
                object.__setattr__(self, "_s", None)
                return
            if key in ("max_epochs", "max_iters"):
                key = f"_{key}"
            if key == "meta" and self._ctx is not None and isinstance(value, dict):
                super().__setattr__(name, value)
            self._pre[key] = value
            return
        super().__setattr__(name, value)

    def _state(self) -> TrainState:
        return self._s if self._s is not None else self._start

    def _resource(self, name: str) -> Any:
        ctx = self._ctx
        if ctx is not None:
            return getattr(ctx, name)
        return self._pre[name]

    @property
    def model(self) -> Any:
        # The model as given (an MMDataParallel wrapper stays the wrapper, as in mmcv); the run
        # itself trains and checkpoints the wrapped module.
        return self._pre["model"]

    @property
    def optimizer(self) -> Any:
        return self._resource("optimizer")

    @property
    def logger(self) -> Any:
        return self._resource("logger")

    @property
    def batch_processor(self) -> Any:
        return self._pre["batch_processor"]

    @property
    def work_dir(self) -> str | None:
        return cast("str | None", self._pre["work_dir"])

    @property
    def meta(self) -> Any:
        return self._ctx.meta if self._ctx is not None else self._pre["meta"]

    @property
    def timestamp(self) -> str:
        return self._resource("timestamp")  # type: ignore[no-any-return]

    @property
    def max_epochs(self) -> int | None:
        if self._ctx is not None:
            return cast("int | None", self._ctx.max_epochs)
        return cast("int | None", self._pre["_max_epochs"])

    @property
    def max_iters(self) -> int | None:
        if self._ctx is not None:
            return cast("int | None", self._ctx.max_iters)
        return cast("int | None", self._pre["_max_iters"])

    _max_epochs = max_epochs
    _max_iters = max_iters

    @property
    def log_buffer(self) -> LogBufferView:
        if self._ctx is not None:
            return LogBufferView(self._ctx.log_buffer)
        if self._own_buffer is None:
            from fsm_trainer.logbuffer import LogBuffer

            object.__setattr__(self, "_own_buffer", LogBuffer())
        return LogBufferView(self._own_buffer)

    @property
    def hooks(self) -> list[Any]:
        if self._ctx is not None:
            return RunnerView.hooks.fget(self)  # type: ignore[attr-defined,no-any-return]
        return [h for h, _ in sorted(self._registered, key=lambda p: p[1])]

    _hooks = hooks

    def current_lr(self) -> list[float] | dict[str, list[float]]:
        opt = self.optimizer
        if opt is None:
            msg = "lr is not applicable because optimizer does not exist."
            raise RuntimeError(msg)
        if isinstance(opt, dict):
            return {k: [g["lr"] for g in o.param_groups] for k, o in opt.items()}
        return [g["lr"] for g in opt.param_groups]

    def current_momentum(self) -> list[float] | dict[str, list[float]]:
        if self.optimizer is None:
            msg = "momentum is not applicable because optimizer does not exist."
            raise RuntimeError(msg)
        from fsm_trainer.hooks.logger_base import current_momentum

        return current_momentum(self)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ hooks

    def register_hook(self, hook: Any, priority: int | str | Priority = "NORMAL") -> None:
        """Add a hook: an mmcv class hook, an :class:`fsm_trainer.Hook`, or a factory ``ctx -> Hook``.

        Equal priorities run in registration order, as mmcv's sorted insertion.
        """
        p = get_priority(priority)
        if isinstance(hook, Hook):
            if hasattr(hook, "priority"):
                msg = '"priority" is a reserved attribute for hooks'
                raise ValueError(msg)
            hook.priority = p  # type: ignore[attr-defined]
            entry: Any = hook
        elif isinstance(hook, FsmHook):
            entry = attrs.evolve(hook, priority=p)
        elif callable(hook):
            def entry(ctx: Any, _f: Any = hook, _p: int = p) -> Any:
                return _with_priority(_f(ctx), _p)
            entry.__name__ = getattr(hook, "__name__", "factory")
        else:
            msg = f"register_hook takes an mmcv Hook, an fsm_trainer.Hook or a factory ctx -> Hook, got {hook!r}"
            raise TypeError(msg)
        self._registered.append((entry, p))

    def register_hook_from_cfg(self, hook_cfg: Mapping[str, Any]) -> None:
        cfg = dict(hook_cfg)
        priority = cfg.pop("priority", "NORMAL")
        self.register_hook(build_from_cfg(cfg, HOOKS), priority=priority)

    def _register_cfg(self, cfg: Any, default_type: str | None, priority: str) -> None:
        if cfg is None:
            return
        if isinstance(cfg, Mapping):
            cfg = dict(cfg)
            if default_type is not None:
                cfg.setdefault("type", default_type)
            hook = build_from_cfg(cfg, HOOKS)
        else:
            hook = cfg
        self.register_hook(hook, priority=priority)

    def register_lr_hook(self, lr_config: Any) -> None:
        if isinstance(lr_config, Mapping):
            lr_config = dict(lr_config)
            if "policy" not in lr_config:
                msg = "lr_config needs a 'policy'"
                raise KeyError(msg)
            policy = lr_config.pop("policy")
            if policy == policy.lower():
                policy = policy.title()
            lr_config["type"] = policy + "LrUpdaterHook"
        self._register_cfg(lr_config, None, "VERY_HIGH")

    def register_momentum_hook(self, momentum_config: Any) -> None:
        if isinstance(momentum_config, Mapping):
            momentum_config = dict(momentum_config)
            if "policy" not in momentum_config:
                msg = "momentum_config needs a 'policy'"
                raise KeyError(msg)
            policy = momentum_config.pop("policy")
            if policy == policy.lower():
                policy = policy.title()
            momentum_config["type"] = policy + "MomentumUpdaterHook"
        self._register_cfg(momentum_config, None, "HIGH")

    def register_optimizer_hook(self, optimizer_config: Any) -> None:
        self._register_cfg(optimizer_config, "OptimizerHook", "ABOVE_NORMAL")

    def register_checkpoint_hook(self, checkpoint_config: Any) -> None:
        self._register_cfg(checkpoint_config, "CheckpointHook", "NORMAL")

    def register_timer_hook(self, timer_config: Any) -> None:
        self._register_cfg(copy.deepcopy(timer_config), None, "LOW")

    def register_logger_hooks(self, log_config: Mapping[str, Any] | None) -> None:
        if log_config is None:
            return
        interval = log_config["interval"]
        for info in log_config["hooks"]:
            self.register_hook(build_from_cfg(info, HOOKS, default_args={"interval": interval}), priority="VERY_LOW")

    def register_custom_hooks(self, custom_config: Any) -> None:
        if custom_config is None:
            return
        if not isinstance(custom_config, list):
            custom_config = [custom_config]
        for item in custom_config:
            if isinstance(item, Mapping):
                self.register_hook_from_cfg(item)
            else:
                self.register_hook(item, priority="NORMAL")

    def register_profiler_hook(self, profiler_config: Any) -> None:
        if profiler_config is None:
            return
        if isinstance(profiler_config, Mapping):
            self.register_hook(build_from_cfg({"type": "ProfilerHook", **profiler_config}, HOOKS))
        else:
            self.register_hook(profiler_config)

    def register_training_hooks(self, lr_config: Any, optimizer_config: Any = None, checkpoint_config: Any = None,
                                log_config: Mapping[str, Any] | None = None, momentum_config: Any = None,
                                timer_config: Any = None, custom_hooks_config: Any = None) -> None:
        """mmcv's defaults: LR (VERY_HIGH), momentum (HIGH), optimizer (ABOVE_NORMAL), checkpoint (NORMAL),
        timer (LOW), loggers (VERY_LOW), custom hooks (NORMAL unless given)."""
        if timer_config is None:
            timer_config = {"type": "IterTimerHook"}
        self.register_lr_hook(lr_config)
        self.register_momentum_hook(momentum_config)
        self.register_optimizer_hook(optimizer_config)
        self.register_checkpoint_hook(checkpoint_config)
        self.register_timer_hook(timer_config)
        self.register_logger_hooks(log_config)
        self.register_custom_hooks(custom_hooks_config)

    def get_hook_info(self) -> str:
        """The hooks per stage with their priorities, in mmcv's layout."""
        stage_map: dict[str, list[str]] = {stage: [] for stage in STAGES}
        for hook in self.hooks:
            prio = getattr(hook, "priority", Priority.NORMAL)
            try:
                level = Priority(prio).name
            except ValueError:
                level = str(prio)
            if isinstance(hook, Hook):
                name, stages = type(hook).__name__, hook.get_triggered_stages()
            elif isinstance(hook, FsmHook):
                name = hook.name
                generic = {"before_epoch": ("before_train_epoch", "before_val_epoch"),
                           "after_epoch": ("after_train_epoch", "after_val_epoch")}
                stages = [st for st in STAGES if st in hook.on or any(st in generic.get(p, ()) for p in hook.on)]
            else:
                name, stages = getattr(hook, "__name__", type(hook).__name__), []
            for st in stages:
                stage_map[st].append(f"({level:<12}) {name:<35}")
        infos = [f"{st}:\n" + "\n".join(v) + "\n -------------------- " for st, v in stage_map.items() if v]
        return "\n".join(infos)

    # ------------------------------------------------------------------ checkpoints

    def load_checkpoint(self, filename: str | Path, map_location: Any = "cpu", strict: bool = False,
                        revise_keys: Sequence[tuple[str, str]] = (("^module.", ""),)) -> Any:
        """Load weights into the model from a checkpoint directory or an mmcv ``.pth`` file (``load_from``)."""
        del map_location, revise_keys
        from fsm_trainer.checkpoint import load_weights

        return load_weights(_inner(self.model), _existing(filename), strict=strict, logger=self.logger)

    def resume(self, checkpoint: str | Path, resume_optimizer: bool = True, map_location: Any = "default") -> None:
        """Resume from a checkpoint directory (``'work_dir/epoch_3'``, ``'work_dir/latest'``; ``.pth`` is
        dropped when no such file exists) or from an mmcv 1.x ``.pth`` file.

        As mmcv, now: the weights, the optimizer, the counters and ``meta`` are loaded. From a
        checkpoint directory the run then continues exactly where the checkpoint was (data
        position, RNG states, hook states); from an mmcv ``.pth`` as mmcv's resume would (see
        :meth:`_resume_pth`).
        """
        del map_location
        from fsm_trainer.checkpoint import _follow_latest, load_checkpoint, load_model_state, load_optimizer_state

        path = _existing(checkpoint)
        if path.is_file() and (path.suffix in (".pth", ".pt") or _follow_latest(path) is None):  # an mmcv file
            self._resume_pth(path, resume_optimizer)
            return
        ck = load_checkpoint(path)
        inner = _inner(self.model)
        load_model_state(inner, ck.model, strict=False, logger=self.logger)
        if resume_optimizer and self.optimizer is not None and ck.optimizer is not None:
            load_optimizer_state(inner, self.optimizer, ck.optimizer)
        object.__setattr__(self, "_start", ck.state)
        object.__setattr__(self, "_s", None)
        saved = ck.meta.get("config", {})
        meta = self._pre["meta"] if self._pre["meta"] is not None else {}
        meta.setdefault("hook_msgs", {})
        meta["hook_msgs"].update(saved.get("hook_msgs", {}) if isinstance(saved, dict) else {})
        if isinstance(saved, dict):
            meta.update(saved)
        self._pre["meta"] = meta
        object.__setattr__(self, "_resume_from", ck.path)
        self.logger.info("resumed epoch %d, iter %d", ck.state.epoch, ck.state.iter)

    def _resume_pth(self, path: Path, resume_optimizer: bool) -> None:
        """Continue a run mmcv 1.x checkpointed: its ``.pth`` (``meta``, ``state_dict``, ``optimizer``).

        Read with ``torch.load(weights_only=True)`` with NumPy scalars allowed (mmcv's hooks keep
        some in ``meta``). As mmcv's ``resume``: the weights, the optimizer state, the counters
        ``meta['epoch']``/``meta['iter']`` and ``meta['hook_msgs']``. The file has no data position,
        RNG or hook states: the run starts its loaders at their first batch, as mmcv's resume does.
        """
        from fsm_trainer.mmcv.checkpoint import load_checkpoint as load_mmcv

        inner = _inner(self.model)
        ck = load_mmcv(inner, path, map_location="cpu", strict=False, logger=self.logger, allow_numpy=True)
        saved = _plain(ck.get("meta") or {}) if isinstance(ck, Mapping) else {}
        if not isinstance(saved, dict):
            msg = f"{path}: 'meta' is a {type(saved).__name__}, not the dict mmcv's runners write"
            raise MmcvCompatError(msg)
        opt_state = ck.get("optimizer") if isinstance(ck, Mapping) else None
        if resume_optimizer and self.optimizer is not None and opt_state is not None:
            if isinstance(self.optimizer, Mapping):
                for name, opt in self.optimizer.items():
                    opt.load_state_dict(opt_state[name])
            else:
                self.optimizer.load_state_dict(opt_state)
        epoch, it = int(saved.get("epoch", 0)), int(saved.get("iter", 0))
        object.__setattr__(self, "_start", TrainState(epoch=epoch, iter=it))
        object.__setattr__(self, "_s", None)
        meta = self._pre["meta"] if self._pre["meta"] is not None else {}
        meta.setdefault("hook_msgs", {}).update(saved.get("hook_msgs", {}))
        self._pre["meta"] = meta
        object.__setattr__(self, "_resume_from", None)
        self.logger.info("resumed epoch %d, iter %d", epoch, it)

    # ------------------------------------------------------------------ running

    def _table(self, workflow: Sequence[tuple[str, int]]) -> Any:
        raise NotImplementedError

    def _steps(self, kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
        model, opt, bp = self._pre["model"], self._pre["optimizer"], self._pre["batch_processor"]
        amp = next((getattr(h, "amp", None) for h, _ in self._registered if getattr(h, "amp", None) is not None),
                   None)
        if not kwargs and amp is None and _inner(model) is model:
            return None, None
        if amp is not None and kwargs:
            msg = "run(**kwargs) with Fp16OptimizerHook: pass the arguments through the model instead"
            raise MmcvCompatError(msg)
        if amp is not None:
            return amp.steps(model, opt, by=self.by)  # type: ignore[no-any-return]
        # As mmcv 1.7.2: the epoch-based runner's val iterations get no kwargs, the iter-based
        # runner's val_step gets them (without the optimizer).
        if bp is not None:
            return (lambda b: bp(model, b, train_mode=True, **kwargs),
                    lambda b: bp(model, b, train_mode=False, **(kwargs if self.by == "iter" else {})))
        val = ((lambda b: model.val_step(b, opt)) if self.by == "epoch"
               else (lambda b: model.val_step(b, **kwargs)))
        return (lambda b: model.train_step(b, opt, **kwargs)), val

    def run(self, data_loaders: list[Any], workflow: list[tuple[str, int]], max_epochs: int | None = None,
            **kwargs: Any) -> None:
        """Run ``workflow`` with one loader per entry; ``kwargs`` reach ``train_step`` (and, in the
        iter-based runner, ``val_step``: mmcv's epoch-based runner calls ``val_step`` without them)."""
        if not isinstance(data_loaders, list):
            msg = f"data_loaders must be a list, got {type(data_loaders).__name__}"
            raise TypeError(msg)
        if len(data_loaders) != len(workflow):
            msg = f"got {len(data_loaders)} data loaders for a workflow of {len(workflow)} entries"
            raise ValueError(msg)
        from fsm_trainer.runner import run

        table = self._table([tuple(w) for w in workflow])  # type: ignore[misc]
        train_step, val_step = self._steps(kwargs)

        def bind(ctx: Any) -> list[FsmHook]:
            attach_view(ctx, self)
            return []

        hooks = [bind, *(h for h, _ in self._registered)]
        logger = self._pre["logger"]
        logger.info("workflow: %s, max: %s", workflow,
                    f"{table.max_epochs} epochs" if table.by == "epoch" else f"{table.max_iters} iters")
        start = self._start
        object.__setattr__(self, "_s", None)
        wd = self._pre["work_dir"]
        model = self._pre["model"]
        inner = _inner(model)
        # A wrapper (MMDataParallel, MMDistributedDataParallel) places its batches itself: the run
        # gets the wrapped module (checkpoints hold its keys, as mmcv's) and moves nothing.
        final = run(start, table, data_loaders=data_loaders, model=inner,
                    optimizer=self._pre["optimizer"], hooks=hooks, work_dir=wd, logger=logger,
                    meta=self._pre["meta"], resume=self._resume_from,
                    batch_processor=self._pre["batch_processor"], train_step=train_step, val_step=val_step,
                    device="auto" if inner is model else None)
        object.__setattr__(self, "_s", final)
        object.__setattr__(self, "_start", TrainState(epoch=final.epoch, iter=final.iter))
        object.__setattr__(self, "_resume_from", None)
        if self._ctx is not None:
            self._pre["meta"] = self._ctx.meta


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays in an mmcv ``meta`` as Python numbers and lists (JSON-able)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    tolist = getattr(value, "tolist", None)
    if type(value).__module__ == "numpy" and callable(tolist):
        return tolist()
    return value


def _inner(model: Any) -> Any:
    from fsm_trainer.mmcv.parallel import is_module_wrapper

    return model.module if model is not None and is_module_wrapper(model) else model


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        for suffix in (".pth", ".pt"):
            if p.name.endswith(suffix) and Path(str(p)[: -len(suffix)]).exists():
                return Path(str(p)[: -len(suffix)])
    return p


class EpochBasedRunner(BaseRunner):
    """mmcv's ``EpochBasedRunner``: ``workflow=[('train', 2), ('val', 1)]`` counts epochs."""

    by = "epoch"

    def _table(self, workflow: Sequence[tuple[str, int]]) -> Any:
        from fsm_trainer.transitions import compile_workflow

        if self._pre["_max_epochs"] is None:
            msg = "max_epochs must be specified during instantiation"
            raise ValueError(msg)
        return compile_workflow(list(workflow), max_epochs=self._pre["_max_epochs"])

    def run(self, data_loaders: list[Any], workflow: list[tuple[str, int]], max_epochs: int | None = None,
            **kwargs: Any) -> None:
        if max_epochs is not None:
            warnings.warn("setting max_epochs in run is deprecated, please set max_epochs in runner_config",
                          DeprecationWarning, stacklevel=2)
            self._pre["_max_epochs"] = max_epochs
        super().run(data_loaders, workflow, **kwargs)

    def save_checkpoint(self, out_dir: str | Path, filename_tmpl: str | None = "epoch_{}.pth",
                        save_optimizer: bool = True, meta: Mapping[str, Any] | None = None,
                        create_symlink: bool = True) -> Path:
        return super().save_checkpoint(out_dir, filename_tmpl, save_optimizer, meta, create_symlink)


class IterBasedRunner(BaseRunner):
    """mmcv's ``IterBasedRunner``: ``workflow=[('train', 1000), ('val', 100)]`` counts iterations."""

    by = "iter"

    def _table(self, workflow: Sequence[tuple[str, int]]) -> Any:
        from fsm_trainer.transitions import compile_workflow

        if self._pre["_max_iters"] is None:
            msg = "max_iters must be specified during instantiation"
            raise ValueError(msg)
        return compile_workflow(list(workflow), max_iters=self._pre["_max_iters"])

    def run(  # type: ignore[override]
        self, data_loaders: list[Any], workflow: list[tuple[str, int]], max_iters: int | None = None, **kwargs: Any
    ) -> None:
        if max_iters is not None:
            warnings.warn("setting max_iters in run is deprecated, please set max_iters in runner_config",
                          DeprecationWarning, stacklevel=2)
            self._pre["_max_iters"] = max_iters
        super().run(data_loaders, workflow, **kwargs)

    def save_checkpoint(self, out_dir: str | Path, filename_tmpl: str | None = "iter_{}.pth",
                        save_optimizer: bool = True, meta: Mapping[str, Any] | None = None,
                        create_symlink: bool = True) -> Path:
        return super().save_checkpoint(out_dir, filename_tmpl, save_optimizer, meta, create_symlink)

    def register_training_hooks(self, lr_config: Any, optimizer_config: Any = None, checkpoint_config: Any = None,
                                log_config: Mapping[str, Any] | None = None, momentum_config: Any = None,
                                timer_config: Any = None, custom_hooks_config: Any = None) -> None:
        """As mmcv's: ``by_epoch=False`` is the default of the checkpoint, LR and logger configs."""
        if isinstance(checkpoint_config, Mapping):
            checkpoint_config = {"by_epoch": False, **checkpoint_config}
        if isinstance(lr_config, Mapping):
            lr_config = {"by_epoch": False, **lr_config}
        if log_config is not None:
            log_config = {**log_config, "hooks": [{"by_epoch": False, **info} for info in log_config["hooks"]]}
        super().register_training_hooks(lr_config, optimizer_config, checkpoint_config, log_config, momentum_config,
                                         timer_config, custom_hooks_config)


RUNNERS.register_module(module=EpochBasedRunner)
RUNNERS.register_module(module=IterBasedRunner)

__all__ = ["BaseRunner", "EpochBasedRunner", "IterBasedRunner"]
