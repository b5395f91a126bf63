"""Test support for the real-config suite: the digits dataset with mmcv's evaluation protocol.

:class:`DigitsEvalDataset` (``evaluate(results, metric=..., logger=..., **eval_kwargs)`` and
mmseg's ``pre_eval``) stands in for the real datasets (mmcls', mmdet's ``CocoDataset``,
mmseg's, mmpose's...), whose metrics (``bbox``, ``mIoU``, ``PCK``...) their ``evaluate`` knows.
Configs import it with ``custom_imports=dict(imports=['tests.configs_real.digits_support'])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from fsm_trainer.config.builtins import DigitsDataset
from fsm_trainer.registry import DATASETS


@DATASETS.register(force=True)
class DigitsEvalDataset(DigitsDataset):
    """The digits with ``evaluate``/``pre_eval``, answering the metric names it is given.

    Args:
        split, seed: as :class:`~fsm_trainer.config.builtins.DigitsDataset`.
        metrics: the metric names ``evaluate`` accepts (the real dataset's); each is returned
            as a key with the accuracy as its value.
        result_keys: more keys ``evaluate`` returns, first (the real dataset's, e.g. ``bbox_mAP``).
    """

    CLASSES = tuple(str(i) for i in range(10))

    def __init__(self, split: str = "train", seed: int = 0, metrics: Sequence[str] = ("accuracy",),
                 result_keys: Sequence[str] = ()) -> None:
        super().__init__(split, seed)
        self.METRICS = tuple(metrics)
        self.result_keys = tuple(result_keys)
        self.evaluated: list[dict[str, Any]] = []

    def pre_eval(self, preds: Any, indices: Sequence[int]) -> list[bool]:
        """mmseg's per-batch reduction: whether each prediction is right."""
        return [bool(int(torch.as_tensor(p).argmax()) == int(self.y[i])) for p, i in zip(preds, indices, strict=True)]

    def evaluate(self, results: Sequence[Any], metric: str | Sequence[str] = "accuracy", logger: Any = None,
                 **eval_kwargs: Any) -> dict[str, float]:
        """The accuracy of ``results`` (per-sample outputs, or ``pre_eval`` flags) under every name."""
        names = [metric] if isinstance(metric, str) else list(metric)
        for m in names:
            if m not in self.METRICS:
                msg = f"metric {m!r} is not supported; allowed: {self.METRICS}"
                raise KeyError(msg)
        if len(results) != len(self):
            msg = f"expected {len(self)} results, got {len(results)}"
            raise ValueError(msg)
        if results and isinstance(results[0], bool):
            correct = sum(results)
        else:
            preds = torch.stack([torch.as_tensor(r) for r in results]).argmax(1)
            correct = int((preds == self.y).sum())
        acc = correct / len(self)
        self.evaluated.append({"metric": names, **eval_kwargs})
        return {k: acc for k in (*self.result_keys, *names)}
