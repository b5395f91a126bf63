"""A guard against non-finite losses (mmcv has none)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fsm_trainer.context import RunContext
from fsm_trainer.errors import FsmTrainerError, HookError
from fsm_trainer.hook import Hook, HookFn, reachable_only
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


class NonFiniteLossError(FsmTrainerError, FloatingPointError):
    """The loss became NaN or infinite (``nan_guard_hook(action="raise")``)."""


def _last_checkpoint(ctx: RunContext) -> str | None:
    last = ctx.meta.get("hook_msgs", {}).get("last_ckpt")
    if last is not None:
        return str(last)
    if ctx.resumed_from is not None:
        return str(ctx.resumed_from)
    return None


def nan_guard_hook(
    keys: Sequence[str] = ("loss",),
    *,
    action: str = "stop",
    interval: int = 50,
    name: str = "NanGuardHook",
    priority: int | str = Priority.ABOVE_NORMAL - 5,
) -> Callable[[RunContext], Hook]:
    """Catch a NaN or infinite loss, without a host sync per iteration.

    After each train iteration, before the optimizer hook (ABOVE_NORMAL), it looks at the
    step's ``log_vars[key]`` for each of ``keys`` (``outputs[key]`` when ``log_vars`` lacks it).

    **Python numbers** are checked at once. On a non-finite one the step is skipped (see below) and:

    * ``"stop"``: the run stops after this iteration (``after_run`` runs), and the error log
      names the iteration and the last checkpoint saved (or resumed from) in this run;
      ``hook_states[name]`` records it.
    * ``"skip"``: a warning is logged, training goes on; ``hook_states[name]`` counts the
      skipped steps.
    * ``"raise"``: :class:`NonFiniteLossError` with the same message.

    **Tensors** (``loss.detach()``, as the shipped steps log) are not read back every
    iteration, which would make the host wait for the device each time. The guard adds each
    into a float64 accumulator on its device (one small kernel per key and iteration; a NaN or
    infinity keeps the sum non-finite) and reads the accumulator back (one host sync) when
    ``iter + 1`` is a multiple of ``interval``, at the run's last iteration, at the end of every
    train epoch (epoch-based) and at the end of the run. So, with tensors:

    * A non-finite value is found up to ``interval - 1`` train iterations after the step that
      produced it (never later than the end of its epoch, or of the run). The optimizer steps of
      the iterations in between already used it: the weights may be non-finite by then. The
      step of the checking iteration is skipped; a check at the end of an epoch or of the run
      skips nothing (every step was taken).
    * The message names the span of iterations that holds the value ("at an iteration from
      ``a`` to ``b``": those since the previous check), and ``last_good_checkpoint`` (in the
      message and in ``hook_states[name]``) is the newest checkpoint saved before iteration
      ``a`` (or the one the run resumed from, if none was saved since): a checkpoint saved
      inside the span may already hold non-finite weights.
    * ``"stop"`` stops the run at the check, ``"raise"`` raises there. ``"skip"`` has to know
      before the optimizer steps, so with ``"skip"`` tensors are read back every iteration
      (one host sync per iteration) and behave as Python numbers; so does ``interval=1``.
    * The accumulator's verdict is part of checkpoints (the hook's ``state_dict``, read back
      when a checkpoint is saved), so a resumed run reports what the uninterrupted run would.

    Skipping replaces the step's ``loss`` by a zero that depends on no parameter, so the
    optimizer hook's ``zero_grad`` (set to ``None``), ``backward`` and ``step`` leave every
    parameter and optimizer buffer untouched. The non-finite ``log_vars`` were already put in
    the log buffer, so that interval's logged average shows them. With an fp16 ``GradScaler``
    use ``"raise"`` (the scaler refuses a step without gradients; it skips non-finite steps
    itself anyway).
    """
    if action not in ("stop", "skip", "raise"):
        msg = f"action must be 'stop', 'skip' or 'raise', got {action!r}"
        raise HookError(msg)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        msg = f"interval must be a positive int, got {interval!r}"
        raise HookError(msg)
    keys = tuple(keys)
    at_once = action == "skip" or interval == 1

    def factory(ctx: RunContext) -> Hook:
        import torch

        max_iters = ctx.max_iters
        sums: dict[str, torch.Tensor] = {}  # per key: the sum of its tensors since the last check
        span: list[int | None] = [None]  # the first iteration (0-based) in the sums, None: nothing pending
        restored_bad: list[str | None] = [None]  # a non-finite key pending in the checkpoint resumed from
        good: list[str | None] = [None]  # the last checkpoint known to precede every non-finite value

        def value_of(out: Mapping[str, Any], key: str) -> Any:
            log_vars = out.get("log_vars")
            v = log_vars.get(key) if log_vars else None
            return out.get(key) if v is None else v

        def add(key: str, v: torch.Tensor) -> None:
            t = v.detach()
            if t.dim():
                t = t.sum()
            acc = sums.get(key)
            if acc is None:
                kind = torch.float32 if t.device.type == "mps" else torch.float64
                sums[key] = acc = torch.zeros((), dtype=kind, device=t.device)
            elif acc.device != t.device:
                sums[key] = acc = acc.to(t.device)
            acc.add_(t)

        def skipped_step(s: TrainState) -> TrainState:
            skipped = dict(s.outputs)
            skipped["loss"] = torch.zeros((), requires_grad=True)
            return s.with_outputs(skipped)

        def fail(s: TrainState, msg: str, record: dict[str, Any], *, skip: bool) -> TrainState:
            if action == "raise":
                raise NonFiniteLossError(msg)
            kept = dict(s.hook_states.get(name) or {})
            if skip:
                s = skipped_step(s)
            if action == "skip":
                ctx.logger.warning("%s; the step was skipped", msg)
                kept["skipped"] = kept.get("skipped", 0) + 1
                kept["last_skipped_iter"] = s.iter
                return s.with_hook_state(name, kept)
            ctx.logger.error("%s; %s", msg, "the step was skipped and the run stops" if skip else "the run stops")
            kept.update(record)
            return s.with_hook_state(name, kept).request_stop()

        def resume_text(ckpt: str | None) -> str:
            return f"the last good checkpoint is {ckpt}" if ckpt else "no checkpoint was saved before it in this run"

        def check_pending(s: TrainState, last: int, *, skip: bool) -> TrainState:
            """Read the sums back (one sync); ``last``: the 1-based number of the last iteration in them."""
            first = span[0]
            span[0] = None
            bad = restored_bad[0]
            restored_bad[0] = None
            for key, acc in sums.items():
                if bad is None and not bool(torch.isfinite(acc)):
                    bad = key
                acc.zero_()
            if bad is None:
                good[0] = _last_checkpoint(ctx)
                return s
            lo = last if first is None else first + 1
            msg = (f"{name}: {bad} was non-finite at an iteration from {lo} to {last} (read back every {interval} "
                   f"iterations, so the optimizer steps before the check may have used it); {resume_text(good[0])}")
            record = {"stopped_at_iter": s.iter, "key": bad, "value": "non-finite", "first_iter": lo - 1,
                      "last_good_checkpoint": good[0]}
            return fail(s, msg, record, skip=skip)

        def before_run(s: TrainState) -> TrainState:
            good[0] = _last_checkpoint(ctx)
            return s

        def after_train_iter(s: TrainState) -> TrainState:
            out = s.outputs
            if span[0] is None and not at_once:  # every step so far is checked: so is every checkpoint
                good[0] = _last_checkpoint(ctx)
            for key in keys:
                v = value_of(out, key)
                if v is None:
                    continue
                if isinstance(v, torch.Tensor):
                    if not at_once:
                        add(key, v)
                        if span[0] is None:
                            span[0] = s.iter
                        continue
                    x = float(v.detach().float().sum())
                else:
                    x = float(v)
                if math.isfinite(x):
                    continue
                where = f"iteration {s.iter + 1} (epoch {s.epoch + 1}, batch {s.inner_iter + 1})"
                ckpt = _last_checkpoint(ctx)
                resume = f"the last good checkpoint is {ckpt}" if ckpt else "no checkpoint was saved in this run"
                record = {"stopped_at_iter": s.iter, "key": key, "value": str(x), "last_good_checkpoint": ckpt}
                return fail(s, f"{name}: {key} is {x} at {where}; {resume}", record, skip=True)
            if span[0] is not None and ((s.iter + 1) % interval == 0 or s.iter + 1 == max_iters):
                return check_pending(s, s.iter + 1, skip=True)
            return s

        def at_end(s: TrainState) -> TrainState:
            if span[0] is None and restored_bad[0] is None:
                return s
            return check_pending(s, s.iter, skip=False)

        def state_dict() -> dict[str, Any]:
            bad = restored_bad[0]
            if bad is None and span[0] is not None:  # one sync per checkpoint
                bad = next((k for k, acc in sums.items() if not bool(torch.isfinite(acc))), None)
            return {"span_from": span[0], "bad_key": bad, "last_good_checkpoint": good[0]}

        def load_state_dict(d: dict[str, Any]) -> None:
            span[0] = d.get("span_from")
            restored_bad[0] = d.get("bad_key")
            good[0] = d.get("last_good_checkpoint")
            for acc in sums.values():
                acc.zero_()

        on: dict[str, HookFn] = {"after_train_iter": after_train_iter}
        if at_once:
            return Hook(name, priority, on)
        on.update(before_run=before_run, after_train_epoch=at_end, after_run=at_end)
        return Hook(name, priority, reachable_only(on, ctx.table), state_dict=state_dict,
                    load_state_dict=load_state_dict)

    return factory


__all__ = ["NonFiniteLossError", "nan_guard_hook"]
