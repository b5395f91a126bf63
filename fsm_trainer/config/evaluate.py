"""Evaluate a checkpoint with a config's model, data and metrics (``fsm-trainer test``).

>>> from fsm_trainer.config import load
>>> result = evaluate_checkpoint(load("configs/digits_mlp.py"), "work_dirs/digits_mlp/latest")  # doctest: +SKIP
>>> result.split, result.metrics                                                                # doctest: +SKIP
('val', {'accuracy': 0.98})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from fsm_trainer.config.build import build_loader, set_random_seed
from fsm_trainer.config.loader import ConfigError
from fsm_trainer.config.schema import TrainConfig
from fsm_trainer.config.validate import check_config, constructing
from fsm_trainer.registry import DATASETS, MODELS


@attrs.frozen
class Evaluation:
    """What :func:`evaluate_checkpoint` measured: the metrics of ``checkpoint`` on ``data.<split>``."""

    checkpoint: Path
    split: str
    samples: int | None
    metric: Any
    metrics: dict[str, float]


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, a ``latest`` file, a work dir holding ``latest``, or a weights file.

    Raises:
        fsm_trainer.checkpoint.CheckpointNotFoundError: nothing at ``path``, or a directory that is
            neither a checkpoint nor a work dir with ``latest``.
    """
    from fsm_trainer.checkpoint import LATEST, MANIFEST, CheckpointNotFoundError

    p = Path(path)
    if not p.exists():
        msg = f"{p}: no such checkpoint (give a checkpoint directory, a work dir, its 'latest' file or a .pth file)"
        raise CheckpointNotFoundError(msg)
    if p.is_dir() and not (p / MANIFEST).is_file():
        if (p / LATEST).is_file():
            return p / LATEST
        msg = f"{p}: a directory that is neither a checkpoint (no {MANIFEST}) nor a work dir with a '{LATEST}' file"
        raise CheckpointNotFoundError(msg)
    return p


def evaluate_checkpoint(cfg: TrainConfig, checkpoint: str | Path, *, split: str | None = None) -> Evaluation:
    """Load ``checkpoint`` into the config's model and compute the config's metrics on a data split.

    Args:
        cfg: a structured config (:func:`fsm_trainer.config.load`).
        checkpoint: see :func:`resolve_checkpoint`; the model's keys and shapes must match it.
        split: ``"test"`` or ``"val"``; default ``data.test``, else ``data.val``.

    The metrics are ``evaluation.metric`` (default ``"accuracy"``), computed as the eval hook
    does (:func:`fsm_trainer.hooks.eval.predict_all` in eval mode, without grad).

    Raises:
        ConfigError: the config is invalid, or has no such split.
        fsm_trainer.checkpoint.CheckpointError: the checkpoint is missing, invalid, or of another model.
    """
    from fsm_trainer.checkpoint import load_weights
    from fsm_trainer.hooks.eval import predict_all
    from fsm_trainer.metrics import combine

    check_config(cfg)
    if split is None:
        split = "test" if cfg.data.test is not None else "val"
    if split not in ("test", "val"):
        msg = f"split: {split!r} is not allowed; allowed: 'test', 'val'"
        raise ConfigError(msg)
    ds_cfg = getattr(cfg.data, split)
    if ds_cfg is None:
        msg = "data.test: required to test a checkpoint (or data.val, used when there is no data.test)"
        raise ConfigError(msg)
    path = resolve_checkpoint(checkpoint)
    seed = cfg.seed if cfg.seed is not None else 0
    set_random_seed(seed)
    with constructing("model", cfg.model):
        model = MODELS.build(cfg.model, "model")
    load_weights(model, path, strict=True)
    with constructing(f"data.{split}", ds_cfg):
        dataset = DATASETS.build(ds_cfg, f"data.{split}")
    over = getattr(cfg.data, f"{split}_dataloader")
    with constructing(f"data.{split}_dataloader", {"type": "DataLoader", **over}):
        loader = build_loader(dataset, cfg, split, seed)
    metric = (cfg.evaluation or {}).get("metric", "accuracy")
    outputs, targets = predict_all(model, loader)
    results = {k: float(v) for k, v in combine(metric)(outputs, targets).items()}
    try:
        samples: int | None = len(dataset)
    except TypeError:
        samples = None
    return Evaluation(path, split, samples, metric, results)


__all__ = ["Evaluation", "evaluate_checkpoint", "resolve_checkpoint"]
