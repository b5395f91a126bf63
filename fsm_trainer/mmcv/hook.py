"""mmcv 1.7.2's ``Hook`` base class, and how a class hook becomes a :class:`fsm_trainer.Hook`.

A class hook is a subclass of :class:`Hook` overriding some of mmcv's points. An instance is
also a hook factory (``ctx -> fsm_trainer.Hook``), so it can be given to
:func:`fsm_trainer.run`, registered in a config's ``custom_hooks`` or on an
:class:`~fsm_trainer.mmcv.EpochBasedRunner`. Only the points it overrides (directly or
through mmcv's generic ``before_epoch``/``after_iter``... forwarding) become state
functions; each calls the method with a :class:`RunnerView`, mmcv's ``runner`` argument,
whose counters are the state's at that point.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any, ClassVar

from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.hook import Hook as FsmHook
from fsm_trainer.hook import reachable_only
from fsm_trainer.priority import Priority, get_priority
from fsm_trainer.state import TrainState

if TYPE_CHECKING:
    from fsm_trainer.context import RunContext


class MmcvCompatError(FsmTrainerError, ValueError):
    """An mmcv-style hook or runner was used in a way this layer cannot honour; the message says why."""


class RunnerAttributeError(MmcvCompatError, AttributeError):
    """A hook assigned a runner attribute the run owns (a counter, the model...)."""


STAGES = ('before_run', 'before_train_epoch', 'before_train_iter', 'after_train_iter', 'after_train_epoch',
          'before_val_epoch', 'before_val_iter', 'after_val_iter', 'after_val_epoch', 'after_run')
"""mmcv's ``Hook.stages``."""

_GENERIC: dict[str, str] = {
    "before_train_epoch": "before_epoch", "before_val_epoch": "before_epoch",
    "after_train_epoch": "after_epoch", "after_val_epoch": "after_epoch",
    "before_train_iter": "before_iter", "before_val_iter": "before_iter",
    "after_train_iter": "after_iter", "after_val_iter": "after_iter",
}
_EPOCH_POINTS = ("before_run", "after_run", "before_train_epoch", "after_train_epoch", "before_val_epoch",
                 "after_val_epoch", "before_train_iter", "after_train_iter", "before_val_iter", "after_val_iter")
_ITER_POINTS = ("before_run", "after_run", "before_epoch", "after_epoch", "before_train_iter", "after_train_iter",
                "before_val_iter", "after_val_iter")
_METHODS = (*STAGES, "before_epoch", "after_epoch", "before_iter", "after_iter")


class Hook:
    """mmcv 1.7.2's ``Hook``: every point a no-op; the specific points forward to the generic ones.

    Subclass it and override points, exactly as for mmcv. An instance is a hook factory for
    :func:`fsm_trainer.run` (``hook(ctx) -> fsm_trainer.Hook``).
    """

    stages: ClassVar[tuple[str, ...]] = STAGES

    def before_run(self, runner: Any) -> None:
        pass

    def after_run(self, runner: Any) -> None:
        pass

    def before_epoch(self, runner: Any) -> None:
        pass

    def after_epoch(self, runner: Any) -> None:
        pass

    def before_iter(self, runner: Any) -> None:
        pass

    def after_iter(self, runner: Any) -> None:
        pass

    def before_train_epoch(self, runner: Any) -> None:
        self.before_epoch(runner)

    def before_val_epoch(self, runner: Any) -> None:
        self.before_epoch(runner)

    def after_train_epoch(self, runner: Any) -> None:
        self.after_epoch(runner)

    def after_val_epoch(self, runner: Any) -> None:
        self.after_epoch(runner)

    def before_train_iter(self, runner: Any) -> None:
        self.before_iter(runner)

    def before_val_iter(self, runner: Any) -> None:
        self.before_iter(runner)

    def after_train_iter(self, runner: Any) -> None:
        self.after_iter(runner)

    def after_val_iter(self, runner: Any) -> None:
        self.after_iter(runner)

    def every_n_epochs(self, runner: Any, n: int) -> bool:
        return (runner.epoch + 1) % n == 0 if n > 0 else False

    def every_n_inner_iters(self, runner: Any, n: int) -> bool:
        return (runner.inner_iter + 1) % n == 0 if n > 0 else False

    def every_n_iters(self, runner: Any, n: int) -> bool:
        return (runner.iter + 1) % n == 0 if n > 0 else False

    def end_of_epoch(self, runner: Any) -> bool:
        return bool(runner.inner_iter + 1 == len(runner.data_loader))

    def is_last_epoch(self, runner: Any) -> bool:
        return bool(runner.epoch + 1 == runner._max_epochs)

    def is_last_iter(self, runner: Any) -> bool:
        return bool(runner.iter + 1 == runner._max_iters)

    def get_triggered_stages(self) -> list[str]:
        """The stages this hook does something at (mmcv's hook-order listing)."""
        return [stage for stage in STAGES if _active(self, stage)]

    # ------------------------------------------------------------------ fsm_trainer side

    def to_fsm(self, ctx: RunContext) -> FsmHook | list[FsmHook]:
        """This hook for a run: the shipped hook it maps to, or its overridden methods."""
        return class_hook(self, ctx)

    def __call__(self, ctx: RunContext) -> FsmHook | list[FsmHook]:
        return self.to_fsm(ctx)


def _overrides(hook: Any, name: str, base: type = Hook) -> bool:
    """Whether ``hook``'s ``name`` is defined below ``base`` in its class, or on the instance."""
    if name in getattr(hook, "__dict__", {}):
        return True
    for klass in type(hook).__mro__:
        if klass is base:
            return False
        if name in klass.__dict__:
            return True
    return False


def _active(hook: Any, point: str) -> bool:
    """Whether calling ``point`` on ``hook`` can do something (its own code, or a generic it forwards to)."""
    if _overrides(hook, point):
        return True
    generic = _GENERIC.get(point)
    return generic is not None and _overrides(hook, generic)


def overrides_any(hook: Any, base: type, names: tuple[str, ...]) -> bool:
    """Whether ``hook`` redefines any of ``names`` below ``base`` (a subclass customising a shipped hook)."""
    return any(_overrides(hook, n, base) for n in names)


# ---------------------------------------------------------------------- the runner view


class _Run:
    """What the class hooks of one run share: the view, the hooks' names and instances."""

    def __init__(self, view: RunnerView) -> None:
        self.view = view
        self.names: set[str] = set()
        self.instances: dict[str, Any] = {}
        self.meta_restored = False


class _Runs:
    """Per-run records keyed by the identity of the run's context, dropped with the context."""

    def __init__(self) -> None:
        self._by_id: dict[int, _Run] = {}

    def get(self, ctx: Any) -> _Run | None:
        return self._by_id.get(id(ctx)) if ctx is not None else None

    def __setitem__(self, ctx: Any, r: _Run) -> None:
        key = id(ctx)
        if key not in self._by_id:
            weakref.finalize(ctx, self._by_id.pop, key, None)
        self._by_id[key] = r


_RUNS = _Runs()


def run_of(ctx: RunContext) -> _Run:
    """The shared record of ``ctx``'s run (its view is made on first use)."""
    r = _RUNS.get(ctx)
    if r is None:
        view = RunnerView()
        view._bind(ctx)
        r = _RUNS[ctx] = _Run(view)
    return r


def attach_view(ctx: RunContext, view: RunnerView) -> None:
    """Make ``view`` (an mmcv-style runner) the ``runner`` every class hook of ``ctx``'s run gets."""
    view._bind(ctx)
    _RUNS[ctx] = _Run(view)


def unique_name(ctx: RunContext, name: str) -> str:
    """``name``, or ``name#2``, ``name#3``... when the run already has a class hook of that name."""
    used = run_of(ctx).names
    out, k = name, 1
    while out in used:
        k += 1
        out = f"{name}#{k}"
    used.add(out)
    return out


def _code_of(value: Any) -> Iterator[CodeType]:
    """The code objects of a class attribute: a function (and what it wraps), a static or class
    method, a property's accessors, a partial's function, a nested class's attributes."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (staticmethod, classmethod)):
            stack.append(v.__func__)
        elif isinstance(v, property):
            stack.extend(f for f in (v.fget, v.fset, v.fdel) if f is not None)
        elif isinstance(v, functools.partial):
            stack.append(v.func)
        elif isinstance(v, type):
            stack.extend(v.__dict__.values())
        elif isinstance(v, FunctionType):
            yield v.__code__
            wrapped = getattr(v, "__wrapped__", None)
            if wrapped is not None:
                stack.append(wrapped)


def _mentions(code: CodeType, word: str) -> bool:
    """Whether ``word`` is in a name or string constant of ``code`` or of code nested in it."""
    stack = [code]
    while stack:
        c = stack.pop()
        if any(word in n for n in c.co_names):
            return True
        for k in c.co_consts:
            if isinstance(k, CodeType):
                stack.append(k)
            elif isinstance(k, str) and word in k:
                return True
    return False


def _reads_log_buffer(hook: Any) -> bool:
    """Whether a class of ``hook`` (other than the ones shipped here) names ``log_buffer`` in its
    code: an attribute, a name or a string, in a method, a nested function or a docstring."""
    for klass in type(hook).__mro__:
        if klass.__module__.startswith("fsm_trainer.mmcv") or klass is object:
            continue
        if "log_buffer" in (klass.__doc__ or ""):
            return True
        if any(_mentions(code, "log_buffer") for v in vars(klass).values() for code in _code_of(v)):
            return True
    return False


def class_hook(hook: Any, ctx: RunContext, *, name: str | None = None) -> FsmHook:
    """The :class:`fsm_trainer.Hook` calling ``hook``'s active methods with the run's :class:`RunnerView`.

    The priority is ``hook.priority`` (set by ``register_hook``) or NORMAL. A hook with
    ``state_dict``/``load_state_dict`` methods has them saved in and restored from checkpoints.
    """
    r = run_of(ctx)
    view = r.view
    label = unique_name(ctx, name or type(hook).__name__)
    r.instances[label] = hook
    if _reads_log_buffer(hook):
        _ = ctx.log_buffer  # the run then feeds it every iteration's log_vars, as mmcv's runner does
    points = _EPOCH_POINTS if ctx.table.by == "epoch" else _ITER_POINTS
    on: dict[str, Callable[[TrainState], TrainState]] = {}
    for point in points:
        if _active(hook, point):
            on[point] = _caller(view, label, point, getattr(hook, point))
    priority = getattr(hook, "priority", Priority.NORMAL)
    sd = getattr(hook, "state_dict", None)
    lsd = getattr(hook, "load_state_dict", None)
    return FsmHook(label, get_priority(priority), reachable_only(on, ctx.table),
                   state_dict=sd if callable(sd) else None, load_state_dict=lsd if callable(lsd) else None)


def _caller(view: RunnerView, label: str, point: str,
            method: Callable[[Any], Any]) -> Callable[[TrainState], TrainState]:
    enter, leave = view._enter, view._leave

    def call(s: TrainState) -> TrainState:
        enter(s, label, point)
        try:
            method(view)
        finally:
            s = leave()
        return s

    call.__qualname__ = call.__name__ = f"{label}.{getattr(method, '__name__', 'hook')}"
    return call


class IterLoaderView:
    """mmcv's ``IterLoader`` over an iter-based run's cycling loader: ``epoch``, ``len()``, ``_dataloader``."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    @property
    def epoch(self) -> int:
        return int(self._loader.epoch)

    @property
    def _dataloader(self) -> Any:
        return self._loader.loader

    def __len__(self) -> int:
        return len(self._loader.loader)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._loader)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._loader.loader, name)


class LogBufferView:
    """mmcv's ``LogBuffer`` API over a :class:`fsm_trainer.logbuffer.LogBuffer`."""

    def __init__(self, buf: Any) -> None:
        self._buf = buf

    @property
    def val_history(self) -> dict[str, list[Any]]:
        return self._buf.values  # type: ignore[no-any-return]

    @property
    def n_history(self) -> dict[str, list[Any]]:
        return self._buf.counts  # type: ignore[no-any-return]

    @property
    def output(self) -> dict[str, Any]:
        return self._buf.output  # type: ignore[no-any-return]

    @property
    def ready(self) -> bool:
        return bool(self._buf.ready)

    @ready.setter
    def ready(self, value: bool) -> None:
        self._buf.ready = value

    def update(self, vars: Mapping[str, Any], count: int = 1) -> None:
        if not isinstance(vars, Mapping):
            msg = f"log_buffer.update takes a dict of values, got {type(vars).__name__}"
            raise TypeError(msg)
        self._buf.update(vars, count)

    def average(self, n: int = 0) -> None:
        self._buf.average(n)

    def clear(self) -> None:
        self._buf.clear()

    def clear_output(self) -> None:
        self._buf.clear_output()


_OWNED = frozenset({
    "epoch", "iter", "inner_iter", "_epoch", "_iter", "_inner_iter", "max_epochs", "max_iters", "_max_epochs",
    "_max_iters", "mode", "model", "optimizer", "data_loader", "log_buffer", "logger", "work_dir", "hooks",
    "_hooks", "rank", "world_size", "_rank", "_world_size", "timestamp", "model_name", "_model_name",
    "batch_processor",
})
"""Runner attributes a hook reads but the run owns: assigning one inside a hook is an error."""


def _meta_merge(into: dict[str, Any], saved: Mapping[str, Any]) -> None:
    for k, v in saved.items():
        if k not in into:
            into[k] = v
        elif isinstance(into[k], dict) and isinstance(v, Mapping):
            _meta_merge(into[k], v)


class RunnerView:
    """The ``runner`` an mmcv class hook receives: mmcv's attributes, read from the run.

    Counters (``epoch``, ``iter``, ``inner_iter``, ``mode``) are the state's at the point
    being called; ``model``, ``optimizer``, ``logger``, ``work_dir``, ``meta`` are the
    run's; ``data_loader`` is the current workflow entry's loader (an ``IterLoader``-like
    view with ``epoch`` in an iter-based run); ``log_buffer`` has mmcv's API over the run's
    buffer; ``outputs`` is the dict the step returned (mutable; assigning a new dict replaces
    it for the hooks after this one). Assigning an attribute the run owns (``runner._epoch =
    ...``) inside a hook raises :class:`RunnerAttributeError` naming the hook; other new
    attributes are kept on the view, shared by the run's hooks.
    """

    _ctx: Any
    _s: TrainState | None
    _hook: str | None
    _new_outputs: Any
    _point: str | None
    _last_phase: int
    _loader_views: dict[int, Any]

    def __init__(self) -> None:
        for k, v in (("_ctx", None), ("_s", None), ("_hook", None), ("_new_outputs", None), ("_point", None),
                     ("_last_phase", -1), ("_loader_views", {})):
            object.__setattr__(self, k, v)

    # ------------------------------------------------------------------ plumbing

    def _bind(self, ctx: Any) -> None:
        object.__setattr__(self, "_ctx", ctx)
        object.__setattr__(self, "_loader_views", {})
        object.__setattr__(self, "_last_phase", -1)

    def _enter(self, s: TrainState, hook: str, point: str | None = None) -> None:
        object.__setattr__(self, "_s", s)
        object.__setattr__(self, "_hook", hook)
        object.__setattr__(self, "_point", point)
        if s.phase >= 0:
            object.__setattr__(self, "_last_phase", s.phase)
        r = _RUNS.get(self._ctx)
        if r is not None and not r.meta_restored:
            r.meta_restored = True
            self._restore_meta()

    def _leave(self) -> TrainState:
        s = self._s
        assert s is not None
        new = self._new_outputs
        if new is not None:
            object.__setattr__(self, "_new_outputs", None)
            s = s.with_outputs(new)
            object.__setattr__(self, "_s", s)
        object.__setattr__(self, "_hook", None)
        return s

    def _restore_meta(self) -> None:
        ctx = self._ctx
        path = getattr(ctx, "resumed_from", None)
        if path is None:
            return
        import json

        from fsm_trainer.checkpoint import STATE_FILE

        try:
            saved = json.loads((Path(path) / STATE_FILE).read_text())["meta"]["config"]
        except (OSError, KeyError, TypeError, ValueError):
            return
        if isinstance(saved, dict):
            _meta_merge(ctx.meta, saved)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "outputs" and self._hook is not None:
            if not isinstance(value, dict):
                msg = f"hook {self._hook!r} set runner.outputs to a {type(value).__name__}; it must be a dict"
                raise RunnerAttributeError(msg)
            object.__setattr__(self, "_new_outputs", value)
            return
        if name == "meta" and self._ctx is not None:
            if not isinstance(value, dict):
                msg = f"runner.meta must be a dict, got {type(value).__name__}"
                raise RunnerAttributeError(msg)
            meta = self._ctx.meta
            if value is not meta:
                snapshot = dict(value)
                meta.clear()
                meta.update(snapshot)
            return
        if name in _OWNED and self._hook is not None:
            msg = (f"hook {self._hook!r} assigned runner.{name}, which the run owns; fsm_trainer's counters "
                   "and resources change only through the run (to stop early, raise or use a hook returning "
                   "state.request_stop())")
            raise RunnerAttributeError(msg)
        if name in _OWNED and self._ctx is not None:
            msg = f"runner.{name} cannot be assigned while the runner is bound to a run"
            raise RunnerAttributeError(msg)
        object.__setattr__(self, name, value)

    def _state(self) -> TrainState:
        s = self._s
        return s if s is not None else TrainState()

    # ------------------------------------------------------------------ counters

    @property
    def epoch(self) -> int:
        return self._state().epoch

    @property
    def iter(self) -> int:
        return self._state().iter

    @property
    def inner_iter(self) -> int:
        return self._state().inner_iter

    _epoch = epoch
    _iter = iter
    _inner_iter = inner_iter

    @property
    def mode(self) -> str | None:
        return self._state().mode

    @property
    def max_epochs(self) -> int | None:
        return self._ctx.max_epochs if self._ctx is not None else None

    @property
    def max_iters(self) -> int | None:
        return self._ctx.max_iters if self._ctx is not None else None

    _max_epochs = max_epochs
    _max_iters = max_iters

    # ------------------------------------------------------------------ resources

    @property
    def model(self) -> Any:
        return self._ctx.model

    @property
    def optimizer(self) -> Any:
        return self._ctx.optimizer

    @property
    def logger(self) -> Any:
        return self._ctx.logger

    @property
    def work_dir(self) -> str | None:
        wd = self._ctx.work_dir
        return None if wd is None else str(wd)

    @property
    def meta(self) -> dict[str, Any]:
        return self._ctx.meta  # type: ignore[no-any-return]

    @property
    def timestamp(self) -> str:
        return self._ctx.timestamp  # type: ignore[no-any-return]

    @property
    def model_name(self) -> str:
        m = self.model
        return type(getattr(m, "module", m)).__name__

    _model_name = model_name

    @property
    def rank(self) -> int:
        from fsm_trainer.dist import get_dist_info

        return get_dist_info()[0]

    @property
    def world_size(self) -> int:
        from fsm_trainer.dist import get_dist_info

        return get_dist_info()[1]

    _rank = rank
    _world_size = world_size

    @property
    def data_loader(self) -> Any:
        ctx = self._ctx
        phase = self._state().phase
        if phase < 0:
            phase = self._last_phase
        if ctx is None or phase < 0:
            return None
        if ctx.iter_loaders is not None:
            v = self._loader_views.get(phase)
            if v is None or v._loader is not ctx.iter_loaders[phase]:
                v = self._loader_views[phase] = IterLoaderView(ctx.iter_loaders[phase])
            return v
        return ctx.data_loaders[phase]

    @property
    def log_buffer(self) -> LogBufferView:
        return LogBufferView(self._ctx.log_buffer)

    @property
    def outputs(self) -> Any:
        return self._state().outputs

    @property
    def hooks(self) -> list[Any]:
        """The run's hooks in call order: class hooks as their instances, the others as :class:`fsm_trainer.Hook`."""
        r = _RUNS.get(self._ctx)
        instances = r.instances if r is not None else {}
        return [instances.get(h.name, h) for h in self._ctx.hooks]

    _hooks = hooks

    def current_lr(self) -> list[float] | dict[str, list[float]]:
        if self.optimizer is None:
            msg = "lr is not applicable because optimizer does not exist."
            raise RuntimeError(msg)
        return self._ctx.current_lr()  # type: ignore[no-any-return]

    def current_momentum(self) -> list[float] | dict[str, list[float]]:
        if self.optimizer is None:
            msg = "momentum is not applicable because optimizer does not exist."
            raise RuntimeError(msg)
        from fsm_trainer.hooks.logger_base import current_momentum

        return current_momentum(self._ctx)

    def save_checkpoint(self, out_dir: str | Path, filename_tmpl: str | None = None, save_optimizer: bool = True,
                        meta: Mapping[str, Any] | None = None, create_symlink: bool = True) -> Path:
        """Save a checkpoint directory ``out_dir/<filename_tmpl.format(n)>`` (a ``.pth`` suffix is dropped).

        ``n`` is ``epoch + 1`` (epoch-based) or ``iter + 1`` (iter-based), as mmcv. The saved
        state is the position to continue from: called at ``after_train_epoch`` it resumes at
        the next epoch, at ``after_train_iter`` after this iteration. ``create_symlink``:
        update ``out_dir/latest``. Returns the checkpoint's path.
        """
        from fsm_trainer.checkpoint import save_checkpoint, snapshot
        from fsm_trainer.dist import barrier

        ctx = self._ctx
        if ctx is None:
            msg = "save_checkpoint needs a run: call it from a hook, or after runner.run()"
            raise MmcvCompatError(msg)
        by_iter = ctx.table.by == "iter"
        s = self._state()
        if filename_tmpl is None:
            filename_tmpl = "iter_{}.pth" if by_iter else "epoch_{}.pth"
        name = checkpoint_name(filename_tmpl.format(s.iter + 1 if by_iter else s.epoch + 1))
        at = resume_position(ctx.table, s, self._point_hint())
        kwargs = snapshot(ctx, at, save_optimizer=save_optimizer)
        path = Path(out_dir) / name
        if kwargs is not None:
            if meta:
                kwargs["meta"] = {**ctx.meta, **dict(meta)}
            path = save_checkpoint(out_dir, name, **kwargs, update_latest=create_symlink)
        barrier()
        return path

    def _point_hint(self) -> str | None:
        return self._point

    def call_hook(self, fn_name: str) -> None:
        """mmcv's ``call_hook``: every class hook's ``fn_name``, with this runner (fsm hooks are skipped)."""
        for h in self.hooks:
            if isinstance(h, Hook):
                getattr(h, fn_name)(self)


def checkpoint_name(filename: str) -> str:
    """A checkpoint directory name from an mmcv file name: ``'epoch_3.pth'`` -> ``'epoch_3'``.

    >>> checkpoint_name("epoch_3.pth"), checkpoint_name("best_acc.pt"), checkpoint_name("iter_8")
    ('epoch_3', 'best_acc', 'iter_8')
    """
    for suffix in (".pth", ".pt", ".ckpt"):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def resume_position(table: Any, s: TrainState, point: str | None) -> TrainState:
    """The state to continue from when a checkpoint is saved at ``s`` during ``point``
    (:func:`fsm_trainer.counters.resume_position`)."""
    from fsm_trainer.counters import resume_position as position

    return position(table, s, point)


__all__ = [
    "STAGES", "Hook", "IterLoaderView", "LogBufferView", "MmcvCompatError", "RunnerAttributeError", "RunnerView",
    "attach_view", "checkpoint_name", "class_hook", "overrides_any", "resume_position", "run_of", "unique_name",
]
