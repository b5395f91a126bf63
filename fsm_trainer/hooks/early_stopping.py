"""Early stopping on an eval metric (mmcv has none; mmengine's ``EarlyStoppingHook`` is the model)."""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from fsm_trainer.context import RunContext
from fsm_trainer.errors import HookError
from fsm_trainer.hook import Hook, reachable_only
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


@attrs.frozen
class EarlyStopping:
    """Immutable early-stopping progress (the Flax ``EarlyStopping`` pattern): ``update`` returns a new record.

    >>> es = EarlyStopping(rule="less", patience=2)
    >>> for loss in (1.0, 0.8, 0.85, 0.9):
    ...     es = es.update(loss)
    >>> es.best, es.wait, es.should_stop
    (0.8, 2, True)
    """

    rule: str = "greater"
    patience: int = 3
    min_delta: float = 0.0
    best: float | None = None
    wait: int = 0
    should_stop: bool = False

    def update(self, value: float) -> EarlyStopping:
        """Record one new metric value; a NaN counts as no improvement."""
        if math.isnan(value):
            improved = False
        elif self.best is None:
            improved = True
        elif self.rule == "greater":
            improved = value > self.best + self.min_delta
        else:
            improved = value < self.best - self.min_delta
        if improved:
            return attrs.evolve(self, best=value, wait=0, should_stop=False)
        wait = self.wait + 1
        return attrs.evolve(self, wait=wait, should_stop=wait >= self.patience)


def early_stopping_hook(
    monitor: str,
    *,
    patience: int = 3,
    rule: str | None = None,
    min_delta: float = 0.0,
    eval_name: str = "EvalHook",
    name: str = "EarlyStoppingHook",
    priority: int | str = Priority.LOW + 5,
) -> Callable[[RunContext], Hook]:
    """Stop the run when the eval metric ``monitor`` has not improved for ``patience`` evaluations.

    It reads the metrics the eval hook ``eval_name`` keeps in ``state.hook_states`` after each
    evaluation, so it runs at a priority between the eval hook (LOW) and the loggers
    (VERY_LOW); the loggers still log the last evaluation, then the run stops
    (``after_run`` runs). Its progress (``best``, ``wait``) and the position of the last
    evaluation it counted (``counted``: the eval hook's ``last`` without its metrics, e.g.
    ``{"epoch": 3}``) are kept in ``state.hook_states[name]``, so it survives a resume: the
    evaluation restored from a checkpoint, or repeated at the same position by an eval hook
    with ``start`` (mmcv's evaluation after a resume), is not counted again.

    Args:
        monitor: a metric name the eval hook returns (e.g. ``"accuracy"``).
        patience: evaluations without improvement before stopping (>= 1).
        rule: ``"greater"``/``"less"``; inferred from ``monitor`` when ``None``.
        min_delta: the smallest change that counts as an improvement.
    """
    from fsm_trainer.hooks.eval import infer_rule

    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        msg = f"patience must be an int >= 1, got {patience!r}"
        raise HookError(msg)
    resolved = rule if rule is not None else infer_rule(monitor)
    if resolved not in ("greater", "less"):
        msg = f"rule must be 'greater', 'less' or None, got {rule!r}"
        raise HookError(msg)

    def factory(ctx: RunContext) -> Hook:
        def check(s: TrainState) -> TrainState:
            ev = s.hook_states.get(eval_name)
            last = ev.get("last") if ev else None
            if last is None:
                return s
            at = {k: v for k, v in last.items() if k != "metrics"}
            kept = s.hook_states.get(name) or {}
            if kept.get("counted") == at:
                return s
            if monitor not in last["metrics"]:
                got = sorted(last["metrics"])
                msg = f"{name}: the eval hook {eval_name!r} returned no {monitor!r} (metrics: {got})"
                raise HookError(msg)
            es = EarlyStopping(resolved, patience, min_delta, kept.get("best"), kept.get("wait", 0))
            es = es.update(float(last["metrics"][monitor]))
            s = s.with_hook_state(name, {"best": es.best, "wait": es.wait, "stopped": es.should_stop, "counted": at})
            if es.should_stop:
                ctx.logger.info("%s: no improvement of %s for %d evaluations (best %.4f); stopping",
                                name, monitor, es.wait, es.best)
                return s.request_stop()
            return s

        def stay_stopped(s: TrainState) -> TrainState:
            # Resumed from a checkpoint saved when this hook stopped the run: the run that never
            # stopped ends there too, so the resumed one ends at once (remove the hook to go on).
            kept = s.hook_states.get(name) or {}
            if kept.get("stopped"):
                ctx.logger.info("%s: the run had stopped early (best %s %.4f); it stays stopped", name, monitor,
                                kept.get("best"))
                return s.request_stop()
            return s

        on = {"before_run": stay_stopped, "after_train_iter": check}
        if ctx.table.by == "epoch":
            on["after_train_epoch"] = check
        return Hook(name, priority, reachable_only(on, ctx.table))

    return factory


__all__ = ["EarlyStopping", "early_stopping_hook"]
