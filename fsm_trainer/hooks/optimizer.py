"""The optimizer hook: zero_grad, backward, optional grad clipping by norm, step.

Options from mmcv 1.7.2's ``optimizer_config``:

* ``grad_clip=dict(max_norm=..., norm_type=...)``: clip by the total norm; the norm before
  clipping is logged as ``grad_norm`` (mmcv's ``OptimizerHook``).
* ``cumulative_iters=k``: accumulate gradients over ``k`` iterations and step once
  (mmcv's ``GradientCumulativeOptimizerHook``): the loss is divided by ``k``, except in the
  last ``max_iters % k`` iterations of the run, where it is divided by that remainder and the
  run's last iteration steps. Groups are counted on the global ``iter``, so a group may span
  an epoch boundary, exactly as in mmcv. Data-parallel (DDP or FSDP), gradients are reduced
  over ranks only in the backward that completes a group (DDP's ``no_sync``).
* ``detect_anomalous_params=True``: log (ERROR) every trainable parameter the loss does not
  depend on, before the backward pass.
* ``amp=Amp(...)``: mixed precision (mmcv's ``Fp16OptimizerHook``), see :class:`Amp`: the
  forward runs under ``torch.autocast`` through :meth:`Amp.wrap`/:meth:`Amp.steps`, and the
  hook scales the loss with a ``GradScaler`` for float16.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

import attrs
import torch

from fsm_trainer.context import RunContext
from fsm_trainer.errors import ArgumentTypeError, HookError, MappingKeyError
from fsm_trainer.hook import Hook
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState
from fsm_trainer.step import StepFn, make_steps

_DTYPES = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def _check_loss_scale(loss_scale: Any) -> None:
    ok = loss_scale == "dynamic" or isinstance(loss_scale, Mapping) or (
        isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool) and loss_scale > 0
    )
    if not ok:
        msg = f"loss_scale must be 'dynamic', a positive number or a dict of GradScaler arguments, got {loss_scale!r}"
        raise HookError(msg)


@attrs.define
class Amp:
    """Mixed precision for a run: ``torch.autocast`` around the forward, a ``GradScaler`` for fp16.

    The forward must run under autocast, and the step function is built by :func:`run`
    before hooks exist, so an ``Amp`` is shared by two places:

    >>> amp = Amp(device_type="cpu")                 # bf16 on CPU: no loss scaling needed
    >>> amp.dtype, amp.uses_scaler
    (torch.bfloat16, False)

    and in a run (``train_step, val_step = amp.steps(model, optimizer, loss_fn=...)``)::

        run(state, table, ..., train_step=train_step, val_step=val_step,
            hooks=[optimizer_hook(amp=amp), ...])

    Args:
        device_type: ``"cpu"`` or ``"cuda"``; default: ``"cuda"`` if available, else ``"cpu"``.
        dtype: ``torch.float16``/``torch.bfloat16`` or their names; default: float16 on CUDA,
            bfloat16 on CPU.
        loss_scale: for float16 only, as mmcv's ``Fp16OptimizerHook``: ``"dynamic"``, a number
            (a static scale) or a dict of ``GradScaler`` arguments. Default 512, as mmcv.
        note: why this precision was chosen (e.g. by :func:`fsm_trainer.device.amp_from_config`
            on the CPU); part of :meth:`describe`.

    The optimizer hook logs :meth:`describe` once per run. With a ``GradScaler``, each step
    reads the scaler's inf check back to the host (``GradScaler.step`` skips the update on
    inf/NaN gradients), one host sync per optimizer step.
    """

    device_type: str = attrs.field(factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")
    dtype: Any = None
    loss_scale: Any = 512.0
    scaler: Any = attrs.field(init=False, default=None)
    static_scale: float | None = attrs.field(init=False, default=None)
    note: str = attrs.field(default="", kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.device_type not in ("cpu", "cuda"):
            msg = f"Amp: device_type must be 'cpu' or 'cuda', got {self.device_type!r}"
            raise HookError(msg)
        if self.dtype is None:
            self.dtype = torch.float16 if self.device_type == "cuda" else torch.bfloat16
        elif isinstance(self.dtype, str):
            if self.dtype not in _DTYPES:
                msg = f"Amp: dtype {self.dtype!r} is unknown; allowed: {', '.join(_DTYPES)}"
                raise HookError(msg)
            self.dtype = _DTYPES[self.dtype]
        if self.dtype not in (torch.float16, torch.bfloat16):
            msg = f"Amp: dtype must be float16 or bfloat16, got {self.dtype!r}"
            raise HookError(msg)
        _check_loss_scale(self.loss_scale)
        if self.uses_scaler:
            if self.loss_scale == "dynamic":
                self.scaler = torch.amp.GradScaler(self.device_type)
            elif isinstance(self.loss_scale, Mapping):
                self.scaler = torch.amp.GradScaler(self.device_type, **self.loss_scale)
            else:
                self.static_scale = float(self.loss_scale)
                self.scaler = torch.amp.GradScaler(self.device_type, init_scale=self.static_scale)

    @property
    def uses_scaler(self) -> bool:
        """Whether losses are scaled (float16 only: bfloat16 has float32's range)."""
        return bool(self.dtype == torch.float16)

    def describe(self) -> str:
        """What this run actually computes in, as the optimizer hook logs it.

        >>> Amp(device_type="cpu", dtype="float16", loss_scale="dynamic").describe()
        'mixed precision: float16 autocast on cpu, GradScaler with a dynamic loss scale'
        """
        name = str(self.dtype).removeprefix("torch.")
        if not self.uses_scaler:
            scaling = "no loss scaling"
        elif self.static_scale is not None:
            scaling = f"GradScaler with a static loss scale of {self.static_scale:g}"
        elif isinstance(self.loss_scale, Mapping):
            scaling = f"GradScaler({', '.join(f'{k}={v!r}' for k, v in self.loss_scale.items())})"
        else:
            scaling = "GradScaler with a dynamic loss scale"
        text = f"mixed precision: {name} autocast on {self.device_type}, {scaling}"
        return f"{text} ({self.note})" if self.note else text

    def autocast(self) -> AbstractContextManager[Any]:
        """The ``torch.autocast`` context for this device and dtype."""
        return torch.autocast(self.device_type, dtype=self.dtype)

    def wrap(self, step: StepFn) -> StepFn:
        """``step`` running under :meth:`autocast`."""

        def autocast_step(batch: Any) -> Mapping[str, Any]:
            with torch.autocast(self.device_type, dtype=self.dtype):
                return step(batch)

        autocast_step.__qualname__ = autocast_step.__name__ = f"autocast({getattr(step, '__name__', 'step')})"
        autocast_step.amp = self  # type: ignore[attr-defined]
        return autocast_step

    def steps(self, model: Any, optimizer: Any = None, **kwargs: Any) -> tuple[StepFn, StepFn]:
        """:func:`~fsm_trainer.step.make_steps` (same arguments), both steps under autocast."""
        train, val = make_steps(model, optimizer, **kwargs)
        return self.wrap(train), self.wrap(val)


def _full(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's full value (a gradient norm under FSDP; a collective, no host sync), else ``t``."""
    full = getattr(t, "full_tensor", None)
    return full() if full is not None else t


def _check_grad_clip(grad_clip: Any) -> None:
    if grad_clip is None:
        return
    if not isinstance(grad_clip, dict) or "max_norm" not in grad_clip:
        msg = f"grad_clip must be a dict with at least 'max_norm', got {grad_clip!r}"
        raise HookError(msg)
    allowed = {"max_norm", "norm_type", "error_if_nonfinite", "foreach"}
    unknown = set(grad_clip) - allowed
    if unknown:
        msg = f"grad_clip: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
        raise HookError(msg)


def _graph_params(loss: torch.Tensor) -> set[torch.Tensor]:
    found: set[torch.Tensor] = set()
    seen: set[Any] = set()
    todo = [loss.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        variable = getattr(fn, "variable", None)
        if variable is not None:
            found.add(variable)
        todo.extend(parent for parent, _ in fn.next_functions)
    return found


def anomalous_params(loss: torch.Tensor, model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The trainable parameters of ``model`` that ``loss`` does not depend on.

    >>> m = torch.nn.Linear(2, 1)
    >>> [n for n, _ in anomalous_params(m.weight.sum(), m)]
    ['bias']
    """
    in_graph = _graph_params(loss)
    for name, p in model.named_parameters():
        if p.requires_grad and p not in in_graph:
            yield name, p


def optimizer_hook(
    grad_clip: dict[str, Any] | None = None,
    *,
    cumulative_iters: int = 1,
    detect_anomalous_params: bool = False,
    amp: Amp | None = None,
    name: str = "OptimizerHook",
    priority: int | str = Priority.ABOVE_NORMAL,
) -> Callable[[RunContext], Hook]:
    """mmcv's ``OptimizerHook`` family: after each train iteration, update the weights from ``loss``.

    Args:
        grad_clip: keyword arguments of ``torch.nn.utils.clip_grad_norm_`` (``max_norm``,
            ``norm_type``...), or ``None`` for no clipping. The norm before clipping is
            logged as ``grad_norm``, weighted by ``num_samples``.
        cumulative_iters: step every ``cumulative_iters`` iterations (see the module docs).
        detect_anomalous_params: log the parameters outside the loss's graph (slow; debugging).
        amp: mixed precision; the step functions must be wrapped by the same :class:`Amp`.
        name, priority: as for any :class:`~fsm_trainer.Hook` (mmcv: ABOVE_NORMAL, 40).

    Returns:
        A hook factory for :func:`~fsm_trainer.run`. With a loss scaler, the hook's
        ``state_dict``/``load_state_dict`` carry the scaler's state (mmcv keeps it in
        ``meta['fp16']['loss_scaler']``).
    """
    _check_grad_clip(grad_clip)
    if not isinstance(cumulative_iters, int) or isinstance(cumulative_iters, bool) or cumulative_iters < 1:
        msg = f"cumulative_iters must be a positive int, got {cumulative_iters!r}"
        raise HookError(msg)
    if amp is not None and not isinstance(amp, Amp):
        msg = f"amp must be an fsm_trainer.hooks.Amp, got {type(amp).__name__}"
        raise ArgumentTypeError(msg)
    k = cumulative_iters

    def factory(ctx: RunContext) -> Hook:
        optimizer, model = ctx.optimizer, ctx.model
        if optimizer is None:
            msg = f"{name} needs run(..., optimizer=...)"
            raise HookError(msg)
        if isinstance(optimizer, dict):
            msg = f"{name} drives one optimizer; with a dict of optimizers, step them in the model's train_step"
            raise HookError(msg)
        needs_model = grad_clip is not None or detect_anomalous_params
        if needs_model and not isinstance(model, torch.nn.Module):
            msg = f"{name}: grad_clip and detect_anomalous_params need run(..., model=<nn.Module>)"
            raise HookError(msg)
        from fsm_trainer.dist import is_fsdp

        if detect_anomalous_params and is_fsdp(model):
            msg = (f"{name}: detect_anomalous_params cannot check a model sharded by FSDP (the graph holds the "
                   "gathered parameters, not the model's); run it without FSDP or with DDP")
            raise HookError(msg)
        logger = ctx.logger
        if amp is not None:
            logger.info("%s: %s", name, amp.describe())
        buf = ctx.log_buffer if grad_clip is not None else None
        scaler = amp.scaler if amp is not None else None
        static = amp.static_scale if amp is not None else None
        max_iters = ctx.max_iters
        if k > 1 and max_iters is None:
            msg = f"{name}: cumulative_iters needs the run's length (the first train loader has no len())"
            raise HookError(msg)
        # mmcv: the last max_iters % k iterations form a short group, divided by its size.
        short_from = max_iters - max_iters % k if k > 1 else 0  # type: ignore[operator]
        switch = grad_sync_switch(ctx)
        started = [False]  # per process: the first accumulation step of this run checks where it starts

        def sync_next(i: int) -> None:
            # Gradients are reduced over ranks only in the backward that completes a group
            # (DDP's no_sync, FSDP's set_requires_gradient_sync); DDP reads the flag at forward.
            if switch is not None:
                switch((i + 1) % k == 0 or i + 1 == max_iters)

        def check_first(s: TrainState) -> TrainState:
            sync_next(s.iter)
            if isinstance(model, torch.nn.Module) and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                                          for m in model.modules()):
                logger.warning("%s: gradient accumulation with BatchNorm layers may slightly lower accuracy", name)
            return s

        def optimizer_params() -> Iterator[torch.Tensor]:
            for g in optimizer.param_groups:
                yield from g["params"]

        def clip_and_step(s: TrainState) -> None:
            if grad_clip is not None:
                # As mmcv, the parameters are listed at each step: one unfrozen later is clipped too.
                with_grad = [p for p in model.parameters() if p.requires_grad and p.grad is not None]
                if with_grad:
                    norm = torch.nn.utils.clip_grad_norm_(with_grad, **grad_clip)
                    # A tensor (no host sync here); the log buffer reads it back at the logging point.
                    buf.update({"grad_norm": _full(norm).detach()}, s.outputs.get("num_samples", 1))  # type: ignore[union-attr]
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)
                scaler.update(static)

        def backward(loss: torch.Tensor) -> None:
            if scaler is None:
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            else:
                scaler.scale(loss).backward()

        def get_loss(s: TrainState) -> torch.Tensor:
            loss: torch.Tensor | None = s.outputs.get("loss")
            if loss is None:
                msg = f"{name}: the train step's outputs have no 'loss' (keys: {sorted(s.outputs)})"
                raise MappingKeyError(msg)
            if detect_anomalous_params:
                for n, p in anomalous_params(loss, model):
                    logger.error("%s with shape %s is not in the computational graph", n, tuple(p.size()))
            return loss

        def after_train_iter(s: TrainState) -> TrainState:
            loss = get_loss(s)
            optimizer.zero_grad()
            backward(loss)
            if scaler is not None and grad_clip is not None:
                scaler.unscale_(optimizer)
            clip_and_step(s)
            return s

        def after_train_iter_cumulative(s: TrainState) -> TrainState:
            i = s.iter
            loss = get_loss(s)
            if not started[0]:
                started[0] = True
                if i % k and not any(p.grad is not None for p in optimizer_params()):
                    logger.warning(
                        "%s: the run starts at iter %d, inside a group of cumulative_iters=%d, with no accumulated "
                        "gradients (none were saved); the group's first iterations are lost", name, i, k,
                    )
            if i < short_from:
                factor = k
            else:
                factor = max_iters - short_from  # type: ignore[operator]
                if i == short_from:
                    logger.warning(
                        "%s: the loss is divided by %d in the last %d iterations (not enough for "
                        "cumulative_iters=%d)", name, factor, factor, k,
                    )
            backward(loss / factor)
            if (i + 1) % k == 0 or i + 1 == max_iters:
                if scaler is not None and grad_clip is not None:
                    scaler.unscale_(optimizer)
                clip_and_step(s)
                optimizer.zero_grad()
            sync_next(i + 1)
            return s

        def after_train_iter_plain(s: TrainState) -> TrainState:
            # The common case (no clipping, scaling or graph check) without helper calls: it
            # runs every iteration.
            loss = s.outputs.get("loss")
            if loss is None:
                loss = get_loss(s)  # raises with the message
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return s

        on: dict[str, Callable[[TrainState], TrainState]] = {}
        if k > 1:
            on["before_run"] = check_first
            on["after_train_iter"] = after_train_iter_cumulative
        elif scaler is None and grad_clip is None and not detect_anomalous_params:
            on["after_train_iter"] = after_train_iter_plain
        else:
            on["after_train_iter"] = after_train_iter
        accumulates = k > 1 and isinstance(model, torch.nn.Module)
        if scaler is None and not accumulates:
            return Hook(name, priority, on)

        def state_dict() -> dict[str, Any]:
            d: dict[str, Any] = {}
            if scaler is not None:
                d["loss_scaler"] = scaler.state_dict()
            if accumulates:
                # The gradients summed so far in an unfinished accumulation group: a resume
                # inside the group continues the same sum.
                d["grads"] = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
            return d

        def load_state_dict(d: dict[str, Any]) -> None:
            if scaler is not None and "loss_scaler" in d:
                scaler.load_state_dict(d["loss_scaler"])
            if accumulates and "grads" in d:
                grads = d["grads"]
                params = dict(model.named_parameters())
                unknown = sorted(set(grads) - set(params))
                if unknown:
                    msg = f"{name}: saved gradients for parameters the model does not have: {unknown[:5]}"
                    raise MappingKeyError(msg)
                for n, p in params.items():
                    g = grads.get(n)
                    p.grad = None if g is None else g.to(device=p.device, dtype=p.dtype).clone()

        return Hook(name, priority, on, state_dict=state_dict, load_state_dict=load_state_dict)

    return factory


def grad_sync_switch(ctx: RunContext) -> Callable[[bool], None] | None:
    """A function turning the cross-rank gradient reduction of the next backward on or off, for
    a DDP-wrapped or FSDP-sharded model of ``ctx``; ``None`` when nothing is reduced."""
    from fsm_trainer.dist import is_fsdp

    ddp = ctx.parallel_model
    if isinstance(ddp, torch.nn.parallel.DistributedDataParallel):
        return lambda on: setattr(ddp, "require_backward_grad_sync", on)
    if is_fsdp(ctx.model):
        switch: Callable[[bool], None] = ctx.model.set_requires_gradient_sync
        return switch
    return None
