"""The optimizer hook: zero_grad, backward, optional grad clipping by norm, step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from fsm_trainer.context import RunContext
from fsm_trainer.hook import Hook
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


def optimizer_hook(
    grad_clip: dict[str, Any] | None = None,
    *,
    name: str = "OptimizerHook",
    priority: int | str = Priority.ABOVE_NORMAL,
) -> Callable[[RunContext], Hook]:
    """mmcv's ``OptimizerHook``: after each train iteration, update the weights from ``loss``.

    Args:
        grad_clip: keyword arguments of ``torch.nn.utils.clip_grad_norm_`` (``max_norm``,
            ``norm_type``...), or ``None`` for no clipping. The norm before clipping is
            logged as ``grad_norm``, weighted by ``num_samples``.
        name, priority: as for any :class:`~fsm_trainer.Hook` (mmcv: ABOVE_NORMAL, 40).

    Returns:
        A hook factory for :func:`~fsm_trainer.run`.
    """
    if grad_clip is not None:
        if not isinstance(grad_clip, dict) or "max_norm" not in grad_clip:
            msg = f"grad_clip must be a dict with at least 'max_norm', got {grad_clip!r}"
            raise ValueError(msg)
        allowed = {"max_norm", "norm_type", "error_if_nonfinite", "foreach"}
        unknown = set(grad_clip) - allowed
        if unknown:
            msg = f"grad_clip: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
            raise ValueError(msg)

    def factory(ctx: RunContext) -> Hook:
        optimizer, model = ctx.optimizer, ctx.model
        if optimizer is None:
            msg = f"{name} needs run(..., optimizer=...)"
            raise ValueError(msg)
        buf = ctx.log_buffer if grad_clip is not None else None
        params: list[torch.Tensor] = (
            [p for p in model.parameters() if p.requires_grad] if grad_clip is not None else []
        )

        def after_train_iter(s: TrainState) -> TrainState:
            loss = s.outputs.get("loss")
            if loss is None:
                msg = f"{name}: the train step's outputs have no 'loss' (keys: {sorted(s.outputs)})"
                raise KeyError(msg)
            optimizer.zero_grad()
            loss.backward()
            if grad_clip is not None:
                with_grad = [p for p in params if p.grad is not None]
                if with_grad:
                    norm = torch.nn.utils.clip_grad_norm_(with_grad, **grad_clip)
                    buf.update({"grad_norm": float(norm)}, s.outputs.get("num_samples", 1))  # type: ignore[union-attr]
            optimizer.step()
            return s

        return Hook(name, priority, {"after_train_iter": after_train_iter})

    return factory
