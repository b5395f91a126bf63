"""mmcv's optimizer hooks: ``OptimizerHook``, gradient accumulation, mixed precision.

Unsubclassed, each runs as :func:`fsm_trainer.hooks.optimizer_hook` (with an
:class:`~fsm_trainer.hooks.Amp` for the FP16 ones; the runners wrap the model's steps in the
hook's ``amp`` autocast). A subclass overriding a point or ``clip_grads``... runs mmcv's
``after_train_iter`` below, with ``torch.amp.GradScaler`` for the FP16 ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from fsm_trainer.mmcv.hook import MmcvCompatError
from fsm_trainer.priority import Priority

from ._base import MappedHook, shipped, unwrap

if TYPE_CHECKING:
    from fsm_trainer.context import RunContext
    from fsm_trainer.hook import Hook as FsmHook


class OptimizerHook(MappedHook):
    """mmcv's ``OptimizerHook(grad_clip=None, detect_anomalous_params=False)`` (ABOVE_NORMAL)."""

    default_priority = int(Priority.ABOVE_NORMAL)
    customisable: ClassVar[tuple[str, ...]] = ("clip_grads", "detect_anomalous_parameters")

    def __init__(self, grad_clip: dict[str, Any] | None = None, detect_anomalous_params: bool = False) -> None:
        self.grad_clip = grad_clip
        self.detect_anomalous_params = detect_anomalous_params

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("optimizer_hook")(self.grad_clip, detect_anomalous_params=self.detect_anomalous_params,
                                         name=name, priority=priority)

    def uses_log_buffer(self) -> bool:
        return self.grad_clip is not None

    def clip_grads(self, params: Any) -> Any:
        params = [p for p in params if p.requires_grad and p.grad is not None]
        if params:
            return torch.nn.utils.clip_grad_norm_(params, **(self.grad_clip or {}))
        return None

    def _log_grad_norm(self, runner: Any) -> None:
        grad_norm = self.clip_grads(runner.model.parameters())
        if grad_norm is not None:
            runner.log_buffer.update({"grad_norm": float(grad_norm)}, runner.outputs["num_samples"])

    def after_train_iter(self, runner: Any) -> None:
        runner.optimizer.zero_grad()
        if self.detect_anomalous_params:
            self.detect_anomalous_parameters(runner.outputs["loss"], runner)
        runner.outputs["loss"].backward()
        if self.grad_clip is not None:
            self._log_grad_norm(runner)
        runner.optimizer.step()

    def detect_anomalous_parameters(self, loss: torch.Tensor, runner: Any) -> None:
        seen: set[Any] = set()
        stack = [loss.grad_fn] if loss.grad_fn is not None else []
        while stack:
            fn = stack.pop()
            if fn in seen:
                continue
            seen.add(fn)
            var = getattr(fn, "variable", None)
            if var is not None:
                seen.add(var)
            stack.extend(nxt for nxt, _ in fn.next_functions if nxt is not None)
        for n, p in runner.model.named_parameters():
            if p not in seen and p.requires_grad:
                runner.logger.log(40, f"{n} with shape {p.size()} is not in the computational graph \n")


class GradientCumulativeOptimizerHook(OptimizerHook):
    """mmcv's ``GradientCumulativeOptimizerHook(cumulative_iters=1, **OptimizerHook kwargs)``.

    The class path keeps the gradients summed so far in an unfinished group in its
    ``state_dict``, so a run resumed inside a group continues the same sum (mmcv loses them).
    """

    customisable = (*OptimizerHook.customisable, "has_batch_norm", "_init", "_get_loss_factor")

    def __init__(self, cumulative_iters: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(cumulative_iters, bool) or not isinstance(cumulative_iters, int) or cumulative_iters <= 0:
            msg = f"cumulative_iters must be a positive int, got {cumulative_iters!r}"
            raise MmcvCompatError(msg)
        self.cumulative_iters = cumulative_iters
        self.divisible_iters = 0
        self.remainder_iters = 0
        self.initialized = False
        self._model: Any = None
        self._grads_restored = False

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("optimizer_hook")(self.grad_clip, cumulative_iters=self.cumulative_iters,
                                         detect_anomalous_params=self.detect_anomalous_params, name=name,
                                         priority=priority)

    def class_fsm(self, ctx: RunContext) -> FsmHook:
        self._model = unwrap(ctx.model)
        return super().class_fsm(ctx)

    def has_batch_norm(self, module: torch.nn.Module) -> bool:
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            return True
        return any(self.has_batch_norm(m) for m in module.children())

    def _init(self, runner: Any) -> None:
        k = self.cumulative_iters
        if runner.iter % k != 0 and not self._grads_restored:
            runner.logger.warning(
                "the run starts at iter %d, inside a group of cumulative_iters=%d, with no accumulated gradients: "
                "the group's first iterations are lost", runner.iter, k)
        if self.has_batch_norm(runner.model) and k > 1:
            runner.logger.warning("%s: gradient accumulation with BatchNorm layers may slightly lower accuracy",
                                  type(self).__name__)
        self.divisible_iters = runner.max_iters // k * k
        self.remainder_iters = runner.max_iters - self.divisible_iters
        self.initialized = True

    def _get_loss_factor(self, runner: Any) -> int:
        if runner.iter < runner.max_iters - self.remainder_iters:
            return self.cumulative_iters
        runner.logger.warning("the loss is divided by %d in the last %d iterations (not enough for "
                              "cumulative_iters=%d)", self.remainder_iters, self.remainder_iters,
                              self.cumulative_iters)
        return self.remainder_iters

    def _group_done(self, runner: Any) -> bool:
        return self.every_n_iters(runner, self.cumulative_iters) or self.is_last_iter(runner)

    def after_train_iter(self, runner: Any) -> None:
        if not self.initialized:
            self._init(runner)
        loss = runner.outputs["loss"] / self._get_loss_factor(runner)
        loss.backward()
        if self._group_done(runner):
            if self.grad_clip is not None:
                self._log_grad_norm(runner)
            runner.optimizer.step()
            runner.optimizer.zero_grad()

    def state_dict(self) -> dict[str, Any]:
        """The gradients accumulated in the current group, by parameter name."""
        model = self._model
        if model is None:
            return {}
        return {"grads": {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back the gradients of an unfinished group."""
        model = self._model
        grads = state.get("grads")
        if model is None or grads is None:
            return
        params = dict(model.named_parameters())
        unknown = sorted(set(grads) - set(params))
        if unknown:
            msg = f"{type(self).__name__}: saved gradients for parameters the model does not have: {unknown[:5]}"
            raise MmcvCompatError(msg)
        for n, p in params.items():
            g = grads.get(n)
            p.grad = None if g is None else g.to(device=p.device, dtype=p.dtype).clone()
        self._grads_restored = bool(grads)


def _scaler_kwargs(loss_scale: Any) -> tuple[dict[str, Any], float | None]:
    """``GradScaler`` arguments and the static scale for mmcv's ``loss_scale``."""
    if loss_scale == "dynamic":
        return {}, None
    if isinstance(loss_scale, Mapping):
        return dict(loss_scale), None
    if isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool) and loss_scale > 0:
        return {"init_scale": float(loss_scale)}, float(loss_scale)
    msg = f"loss_scale must be 'dynamic', a positive number or a dict of GradScaler arguments, got {loss_scale!r}"
    raise MmcvCompatError(msg)


class Fp16OptimizerHook(OptimizerHook):
    """mmcv's ``Fp16OptimizerHook(grad_clip, coalesce, bucket_size_mb, loss_scale=512., distributed)``.

    Unsubclassed it runs as :func:`~fsm_trainer.hooks.optimizer_hook` with an
    :class:`~fsm_trainer.hooks.Amp` (``self.amp``); the runner classes wrap the model's steps
    in that ``Amp``, in both paths. The class path scales the loss with a
    ``torch.amp.GradScaler`` (``self.loss_scaler``) on the device of the model's parameters,
    built from ``loss_scale`` as mmcv (``'dynamic'``, a number: a static scale, or a dict of
    ``GradScaler`` arguments); its state is kept in ``runner.meta['fp16']['loss_scaler']``,
    saved with every checkpoint and loaded in ``before_run``, as mmcv does. ``coalesce``,
    ``bucket_size_mb`` and ``distributed`` have no effect.
    """

    def __init__(self, grad_clip: dict[str, Any] | None = None, coalesce: bool = True, bucket_size_mb: int = -1,
                 loss_scale: float | str | dict[str, Any] = 512.0, distributed: bool = True) -> None:
        super().__init__(grad_clip)
        from fsm_trainer.hooks.optimizer import Amp

        self.coalesce, self.bucket_size_mb, self.distributed = coalesce, bucket_size_mb, distributed
        self._scaler_args, self._scale_update_param = _scaler_kwargs(loss_scale)
        self.loss_scale = loss_scale
        self.amp = Amp(loss_scale=loss_scale)
        self.loss_scaler: Any = None

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("optimizer_hook")(self.grad_clip, cumulative_iters=getattr(self, "cumulative_iters", 1),
                                         amp=self.amp, name=name, priority=priority)

    def make_loss_scaler(self, model: Any) -> Any:
        """A ``torch.amp.GradScaler`` for ``loss_scale`` on the device type of ``model``'s parameters."""
        params = list(model.parameters()) if hasattr(model, "parameters") else []
        device = params[0].device.type if params else "cpu"
        return torch.amp.GradScaler(device, **self._scaler_args)

    def class_fsm(self, ctx: RunContext) -> FsmHook:
        self.loss_scaler = self.make_loss_scaler(ctx.model)
        return super().class_fsm(ctx)

    def before_run(self, runner: Any) -> None:
        if self.loss_scaler is None:
            self.loss_scaler = self.make_loss_scaler(runner.model)
        saved = runner.meta.get("fp16")
        if isinstance(saved, Mapping) and "loss_scaler" in saved:
            self.loss_scaler.load_state_dict(dict(saved["loss_scaler"]))

    def _step(self, runner: Any) -> None:
        self.loss_scaler.unscale_(runner.optimizer)
        if self.grad_clip is not None:
            self._log_grad_norm(runner)
        self.loss_scaler.step(runner.optimizer)
        self.loss_scaler.update(self._scale_update_param)
        runner.meta.setdefault("fp16", {})["loss_scaler"] = self.loss_scaler.state_dict()

    def after_train_iter(self, runner: Any) -> None:
        runner.model.zero_grad()
        runner.optimizer.zero_grad()
        self.loss_scaler.scale(runner.outputs["loss"]).backward()
        self._step(runner)


class GradientCumulativeFp16OptimizerHook(GradientCumulativeOptimizerHook, Fp16OptimizerHook):
    """mmcv's ``GradientCumulativeFp16OptimizerHook(cumulative_iters=1, **Fp16OptimizerHook kwargs)``."""

    def __init__(self, cumulative_iters: int = 1, **kwargs: Any) -> None:
        super().__init__(cumulative_iters=cumulative_iters, **kwargs)

    def fsm_factory(self, name: str, priority: int) -> Any:
        return Fp16OptimizerHook.fsm_factory(self, name, priority)

    def after_train_iter(self, runner: Any) -> None:
        if not self.initialized:
            self._init(runner)
        loss = runner.outputs["loss"] / self._get_loss_factor(runner)
        self.loss_scaler.scale(loss).backward()
        if self._group_done(runner):
            self._step(runner)
            runner.model.zero_grad()
            runner.optimizer.zero_grad()


__all__ = ["Fp16OptimizerHook", "GradientCumulativeFp16OptimizerHook", "GradientCumulativeOptimizerHook",
           "OptimizerHook"]
