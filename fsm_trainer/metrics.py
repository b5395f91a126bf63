"""Metrics for :func:`fsm_trainer.hooks.eval_hook`: ``(outputs, targets) -> {name: value}``.

A metric takes the model's outputs and the targets of the whole eval set (concatenated along
the first dimension) and returns a dict of floats. The built-ins, by name:

* ``"accuracy"``: top-1 accuracy of class scores ``(N, C)`` against labels ``(N,)``, key ``accuracy``;
* ``"top1"``, ``"top5"`` (any ``"top<k>"``): top-k accuracy, key ``top<k>_accuracy``;
* ``"cross_entropy"``: mean cross-entropy, key ``loss`` (compared with ``rule="less"``).

>>> import torch
>>> scores = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
>>> labels = torch.tensor([1, 0, 1, 1])
>>> accuracy(scores, labels)
{'accuracy': 0.5}
>>> top_k_accuracy(2)(scores, labels)
{'top2_accuracy': 1.0}
>>> sorted(combine(["accuracy", "top2"])(scores, labels).items())
[('accuracy', 0.5), ('top2_accuracy', 1.0)]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from fsm_trainer.errors import MetricError

Metric = Callable[[Any, Any], Mapping[str, float]]
"""``(outputs, targets) -> {name: value}``."""


def _check_scores(outputs: torch.Tensor, targets: torch.Tensor, what: str) -> None:
    if outputs.ndim != 2 or targets.ndim != 1 or len(outputs) != len(targets):
        msg = (
            f"{what} needs class scores of shape (N, C) and labels of shape (N,); "
            f"got {tuple(outputs.shape)} and {tuple(targets.shape)}"
        )
        raise MetricError(msg)


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Top-1 accuracy: the fraction of rows whose highest score is at the label."""
    _check_scores(outputs, targets, "accuracy")
    if len(targets) == 0:
        return {"accuracy": float("nan")}
    return {"accuracy": (outputs.argmax(1) == targets).float().mean().item()}


def top_k_accuracy(k: int) -> Metric:
    """Top-``k`` accuracy: the fraction of rows whose label is among the ``k`` highest scores."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        msg = f"k must be a positive int, got {k!r}"
        raise MetricError(msg)
    key = f"top{k}_accuracy"

    def top_k(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        _check_scores(outputs, targets, key)
        if len(targets) == 0:
            return {key: float("nan")}
        best = outputs.topk(min(k, outputs.shape[1]), dim=1).indices
        return {key: (best == targets[:, None]).any(1).float().mean().item()}

    top_k.__name__ = top_k.__qualname__ = key
    return top_k


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy of class scores (logits) against labels, as ``loss``."""
    _check_scores(outputs, targets, "cross_entropy")
    return {"loss": torch.nn.functional.cross_entropy(outputs.float(), targets).item()}


_TOP = re.compile(r"^top-?(\d+)$")


def get_metric(metric: str | Metric) -> Metric:
    """A built-in metric by name (see the module docstring), or ``metric`` itself if callable.

    >>> get_metric("top5").__name__
    'top5_accuracy'
    >>> get_metric("f1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fsm_trainer.errors.MetricError: unknown metric 'f1'; built in: accuracy, cross_entropy, top<k> (e.g. top5), ...

    Raises:
        MetricError: ``metric`` is neither callable nor a built-in name.
    """
    if callable(metric):
        return metric
    if metric == "accuracy":
        return accuracy
    if metric == "cross_entropy":
        return cross_entropy
    m = _TOP.match(metric) if isinstance(metric, str) else None
    if m:
        return top_k_accuracy(int(m.group(1)))
    msg = (
        f"unknown metric {metric!r}; built in: accuracy, cross_entropy, top<k> (e.g. top5), "
        "or pass a function (outputs, targets) -> dict"
    )
    raise MetricError(msg)


def combine(metrics: str | Metric | Sequence[str | Metric]) -> Metric:
    """One metric computing several; a function returning a plain number is keyed by its name."""
    items = [metrics] if isinstance(metrics, str) or callable(metrics) else list(metrics)
    fns = [get_metric(m) for m in items]

    def combined(outputs: Any, targets: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for fn in fns:
            res = fn(outputs, targets)
            if isinstance(res, Mapping):
                out.update(res)
            else:
                out[getattr(fn, "__name__", "metric")] = float(res)
        return out

    return combined


__all__ = ["Metric", "MetricError", "accuracy", "combine", "cross_entropy", "get_metric", "top_k_accuracy"]
