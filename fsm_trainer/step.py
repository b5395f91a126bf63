"""Step functions: one batch in, an outputs dict out (the effectful edge of an iteration).

The documented outputs are mmcv's: a ``dict`` with ``loss`` (a tensor, for the optimizer
hook), ``log_vars`` (``{name: value}`` for the loggers) and ``num_samples`` (the weight of
this batch in logged averages).

A ``log_vars`` value is a Python number or a one-element tensor. Log tensors as they are
(``loss.detach()``), not ``loss.item()``: ``.item()`` makes the host wait for the device at
every iteration, while the log buffer reads tensors back only at logging points
(:class:`~fsm_trainer.logbuffer.LogBuffer`). The shipped steps do so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from fsm_trainer.errors import ArgumentTypeError

StepFn = Callable[[Any], Mapping[str, Any]]


def bad_outputs(step: Any, out: Any) -> Mapping[str, Any]:
    """Return ``out`` if it is a mapping, else raise an :class:`~fsm_trainer.errors.ArgumentTypeError` naming ``step``.

    The runner calls it only when a step returned something other than a plain ``dict``.
    """
    if isinstance(out, Mapping):
        return out
    name = getattr(step, "__qualname__", None) or repr(step)
    msg = (
        f"step function {name} must return a dict with 'loss', 'log_vars' and 'num_samples', "
        f"got {type(out).__name__}: {out!r:.200}"
    )
    raise ArgumentTypeError(msg)


def _named(name: str, fn: StepFn) -> StepFn:
    fn.__qualname__ = fn.__name__ = name
    return fn


def loss_fn_step(
    model: torch.nn.Module, loss_fn: Callable[[Any, Any], torch.Tensor]
) -> StepFn:
    """A step for a plain module and batches ``(inputs, targets)``: ``loss_fn(model(x), y)``.

    It logs ``loss.detach()`` (a tensor on the model's device: no host sync per iteration).
    """

    def step(batch: Any) -> dict[str, Any]:
        try:
            x, y = batch
        except (TypeError, ValueError) as exc:  # its message says how the unpacking failed
            msg = f"with loss_fn, a batch must be an (inputs, targets) pair, got {type(batch).__name__}"
            raise ArgumentTypeError(msg) from exc
        loss = loss_fn(model(x), y)
        return {"loss": loss, "log_vars": {"loss": loss.detach()}, "num_samples": len(x)}

    return step


def no_val_step(model: Any) -> StepFn:
    """The val step of a model without ``val_step``: :func:`fsm_trainer.run` refuses it before
    any work when the workflow has a val phase."""

    def missing(batch: Any) -> Any:
        msg = f"model {type(model).__name__} has no val_step, and the workflow has a val phase"
        raise ArgumentTypeError(msg)

    missing.missing_val_step = True  # type: ignore[attr-defined]
    return missing


def make_steps(
    model: Any,
    optimizer: Any,
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    batch_processor: Callable[..., Mapping[str, Any]] | None = None,
    by: str = "epoch",
    parallel: Any = None,
) -> tuple[StepFn, StepFn]:
    """Return ``(train_step, val_step)`` for ``model``.

    In order of preference: ``batch_processor(model, batch, train_mode=...)`` (mmcv's
    argument); the model's own ``train_step(batch, optimizer)``/``val_step(...)`` (mmcv-style
    models; as in mmcv, the iter-based runner calls ``val_step(batch)`` without optimizer);
    a plain module with ``loss_fn``.

    ``parallel``: the model wrapped for data-parallel training
    (:func:`fsm_trainer.dist.wrap_model`). Train steps then go through the wrapper's
    ``forward``, so that backward synchronises gradients (an mmcv-style model through
    :class:`~fsm_trainer.dist.StepModule`: ``parallel(batch, "train")``); val steps use
    ``model`` itself, with no collective.

    Raises:
        ArgumentTypeError: when none of the three applies.
    """
    fwd = model if parallel is None else parallel
    if batch_processor is not None:
        bp = batch_processor
        train: StepFn = lambda b: bp(fwd, b, train_mode=True)  # noqa: E731
        val: StepFn = lambda b: bp(model, b, train_mode=False)  # noqa: E731
        names = ("batch_processor(train_mode=True)", "batch_processor(train_mode=False)")
    elif hasattr(model, "train_step"):
        train = (lambda b: model.train_step(b, optimizer)) if parallel is None else (lambda b: parallel(b, "train"))
        if not hasattr(model, "val_step"):  # enough for a workflow without val phases, as in mmcv
            val = no_val_step(model)
        else:
            val = (lambda b: model.val_step(b, optimizer)) if by == "epoch" else (lambda b: model.val_step(b))
        names = (f"{type(model).__name__}.train_step", f"{type(model).__name__}.val_step")
    elif loss_fn is not None:
        if not isinstance(model, torch.nn.Module):
            msg = f"with loss_fn, model must be a torch.nn.Module, got {type(model).__name__}"
            raise ArgumentTypeError(msg)
        train, val = loss_fn_step(fwd, loss_fn), loss_fn_step(model, loss_fn)
        names = ("loss_fn step (train)", "loss_fn step (val)")
    else:
        msg = (
            f"model {type(model).__name__} has no train_step/val_step; give loss_fn= "
            "(a plain nn.Module and (inputs, targets) batches) or batch_processor="
        )
        raise ArgumentTypeError(msg)
    return _named(names[0], train), _named(names[1], val)
