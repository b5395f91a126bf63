"""Exponential moving average of the weights (mmcv 1.7.2's ``EMAHook``), swapped in for evaluation.

After train iteration ``i`` (when ``i % interval == 0``), every parameter's average moves by

    ema = (1 - m) * ema + m * param,   m = min(momentum ** interval, (1 + i) / (warm_up + i))

Evaluation sees the averages: in an epoch-based run the model and the averages are swapped
at ``after_train_epoch`` and swapped back at ``before_train_epoch`` (mmcv's behaviour, so a
val epoch, an eval hook at a lower priority or a checkpoint saved after the swap see the EMA
weights). mmcv has no such swap in an iter-based run (mmcv#2195); here the averages are
swapped in at the first iteration of each val segment and out at the next train iteration.

Unlike mmcv, the averages are not registered as model buffers (so the model's
``state_dict`` keeps its keys): they are the hook's state, saved and restored through
``Hook.state_dict``/``load_state_dict``. ``resume_from`` reads them from an mmcv checkpoint
(its ``ema_*`` buffers).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fsm_trainer.context import RunContext
from fsm_trainer.dist import copy_full_
from fsm_trainer.errors import HookError, MappingKeyError
from fsm_trainer.hook import Hook
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


def mmcv_buffer_name(param_name: str) -> str:
    """The buffer name mmcv's EMAHook registers for a parameter.

    >>> mmcv_buffer_name("backbone.conv1.weight")
    'ema_backbone_conv1_weight'
    """
    return f"ema_{param_name.replace('.', '_')}"


def ema_hook(
    momentum: float = 0.0002,
    interval: int = 1,
    warm_up: int = 100,
    resume_from: str | Path | None = None,
    *,
    update_buffers: bool = False,
    name: str = "EMAHook",
    priority: int | str = Priority.NORMAL,
) -> Callable[[RunContext], Hook]:
    """mmcv's ``EMAHook``: keep an EMA of the model's parameters; evaluate with it.

    Args:
        momentum: weight of the new value, in (0, 1) (mmcv's default 0.0002).
        interval: update every ``interval`` iterations; the momentum becomes ``momentum ** interval``.
        warm_up: early iterations use the smaller ``(1 + i) / (warm_up + i)``.
        resume_from: an mmcv checkpoint whose ``state_dict`` holds ``ema_*`` buffers.
        update_buffers: also average the model's floating-point buffers (BatchNorm statistics);
            mmcv averages parameters only.
        name, priority: mmcv registers ``custom_hooks`` at NORMAL unless the config says otherwise.

    Returns:
        A hook factory for :func:`fsm_trainer.run`.
    """
    if not isinstance(momentum, (int, float)) or not 0 < momentum < 1:
        msg = f"EMA momentum must be in (0, 1), got {momentum!r}"
        raise HookError(msg)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        msg = f"EMA interval must be a positive int, got {interval!r}"
        raise HookError(msg)
    if not isinstance(warm_up, int) or isinstance(warm_up, bool) or warm_up < 0:
        msg = f"EMA warm_up must be an int >= 0, got {warm_up!r}"
        raise HookError(msg)
    mom = momentum**interval

    def factory(ctx: RunContext) -> Hook:
        model = ctx.model
        model = getattr(model, "module", model)
        if not isinstance(model, torch.nn.Module):
            msg = f"{name} needs run(..., model=<nn.Module>), got {type(ctx.model).__name__}"
            raise HookError(msg)
        names: list[str] = []
        live: list[torch.Tensor] = []
        ema: list[torch.Tensor] = []
        swapped = [False]
        loaded = [False]

        def bind() -> None:
            # The tensors the averages follow, read when the run starts: after a resume that is
            # the restored model, so the averages (when the checkpoint holds none) start from it.
            tracked: dict[str, torch.Tensor] = dict(model.named_parameters())
            if update_buffers:
                tracked.update((n, b) for n, b in model.named_buffers() if b.is_floating_point())
            names[:] = list(tracked)
            live[:] = [tracked[n] for n in names]
            if loaded[0] and len(ema) == len(live):  # averages given by load_state_dict stay
                return
            ema[:] = [t.detach().clone() for t in live]
            swapped[0] = False

        def swap() -> None:
            with torch.no_grad():
                for t, e in zip(live, ema, strict=True):
                    tmp = t.detach().clone()
                    t.copy_(e)
                    e.copy_(tmp)
            swapped[0] = not swapped[0]

        def before_run(s: TrainState) -> TrainState:
            bind()
            if resume_from is not None:
                from fsm_trainer.checkpoint import _numpy_globals

                # Never unpickle arbitrary objects: mmcv checkpoints hold tensors and, in
                # 'meta', NumPy scalars, which weights_only loading allows when listed.
                with torch.serialization.safe_globals(_numpy_globals()):
                    ckpt = torch.load(resume_from, map_location="cpu", weights_only=True)
                sd = ckpt.get("state_dict", ckpt)
                missing = [mmcv_buffer_name(n) for n in names if mmcv_buffer_name(n) not in sd]
                if missing:
                    msg = f"{name}: {resume_from} has no EMA values for {missing[:5]} (mmcv's ema_* buffers)"
                    raise MappingKeyError(msg)
                with torch.no_grad():
                    for n, e in zip(names, ema, strict=True):
                        copy_full_(e, sd[mmcv_buffer_name(n)])
            return s

        def after_train_iter(s: TrainState) -> TrainState:
            i = s.iter
            if i % interval:
                return s
            m = min(mom, (1 + i) / (warm_up + i))
            with torch.no_grad():
                torch._foreach_mul_(ema, 1 - m)
                torch._foreach_add_(ema, [t.detach() for t in live], alpha=m)
            return s

        def swap_point(s: TrainState) -> TrainState:
            swap()
            return s

        def into_val(s: TrainState) -> TrainState:
            if not swapped[0]:
                swap()
            return s

        def out_of_val(s: TrainState) -> TrainState:
            if swapped[0]:
                swap()
            return s

        on: dict[str, Callable[[TrainState], TrainState]] = {
            "before_run": before_run, "after_train_iter": after_train_iter,
        }
        if ctx.table.by == "epoch":
            on["before_train_epoch"] = swap_point
            on["after_train_epoch"] = swap_point
        elif any(mode == "val" for mode, _ in ctx.table.workflow):
            on["before_val_iter"] = into_val
            on["before_train_iter"] = out_of_val

        def state_dict() -> dict[str, Any]:
            if not live:
                bind()
            return {"ema": {n: e.clone() for n, e in zip(names, ema, strict=True)}, "swapped": swapped[0]}

        def load_state_dict(d: dict[str, Any]) -> None:
            if not live:
                bind()
            values = d["ema"]
            unknown = sorted(set(values) - set(names))
            missing = sorted(set(names) - set(values))
            if unknown or missing:
                msg = f"{name}: EMA state does not match the model (missing {missing[:5]}, unexpected {unknown[:5]})"
                raise MappingKeyError(msg)
            with torch.no_grad():
                for n, e in zip(names, ema, strict=True):
                    copy_full_(e, values[n])  # a shard of it under FSDP
            swapped[0] = bool(d.get("swapped", False))
            loaded[0] = True

        return Hook(name, priority, on, state_dict=state_dict, load_state_dict=load_state_dict)

    return factory


__all__ = ["ema_hook", "mmcv_buffer_name"]
