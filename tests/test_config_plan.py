"""``plan`` cannot disagree with ``train``: the dry run equals what a real run does."""

from __future__ import annotations

import json

import pytest

from fsm_trainer import Hook, TrainState
from fsm_trainer.config import from_dict
from fsm_trainer.config.build import build
from fsm_trainer.config.plan import make_plan
from fsm_trainer.runner import run

DATA = {"samples_per_gpu": 256, "train": {"type": "DigitsDataset", "split": "train"},
        "val": {"type": "DigitsDataset", "split": "val"}, "val_dataloader": {"samples_per_gpu": 128}}

EPOCH_CFG = {
    "model": {"type": "DigitsNet", "hidden": 16},
    "optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9},
    "data": DATA,
    "runner": {"type": "EpochBasedRunner", "max_epochs": 3},
    "workflow": [("train", 1), ("val", 1)],
    "lr_config": {"policy": "step", "step": [2], "warmup": "linear", "warmup_iters": 4},
    "momentum_config": {"policy": "CosineAnnealing", "min_momentum_ratio": 0.5},
    "checkpoint_config": {"interval": 1, "max_keep_ckpts": 2},
    "log_config": {"interval": 4, "hooks": [{"type": "TextLoggerHook"}]},
    "evaluation": {"interval": 2, "metric": "accuracy"},
    "seed": 0,
}
ITER_CFG = {
    **EPOCH_CFG,
    "runner": {"type": "IterBasedRunner", "max_iters": 17},
    "workflow": [("train", 7), ("val", 2)],
    "lr_config": {"policy": "CosineAnnealing", "min_lr": 0.001, "warmup": "exp", "warmup_iters": 3},
    "momentum_config": {"policy": "cyclic", "by_epoch": False},
    "checkpoint_config": {"interval": 5, "max_keep_ckpts": 2},
    "log_config": {"interval": 3, "hooks": [{"type": "TextLoggerHook"}]},
    "evaluation": {"interval": 6, "metric": "accuracy", "start": 6},
}


def spy(optimizer, seen, by):
    def at_iter(s: TrainState) -> TrainState:
        g = optimizer.param_groups[0]
        seen["rows"].append((s.epoch, s.iter, s.inner_iter, g["lr"], g["momentum"]))
        return s

    def at_val(s: TrainState) -> TrainState:
        seen["val"].append(s.iter)
        return s

    points = {"before_train_iter": at_iter}
    if by == "epoch":
        points["before_val_epoch"] = at_val
    return Hook("Spy", "LOWEST", points)


@pytest.mark.slow
@pytest.mark.parametrize("raw", [EPOCH_CFG, ITER_CFG], ids=["epoch", "iter"])
def test_plan_equals_run(raw, tmp_path):
    """LR, momentum, log lines, val, eval and kept checkpoints of the plan are those of a real run."""
    cfg = from_dict(raw)
    built = build(cfg, work_dir=tmp_path)
    plan = make_plan(built.table, [len(x) for x in built.data_loaders], built.specs, cfg.optimizer)
    seen = {"rows": [], "val": []}
    hooks = [*built.hooks, spy(built.optimizer, seen, built.table.by)]
    if built.table.by == "iter":  # val segments have no epoch points: mark their first iteration
        first = {"mode": None}

        def val_iter(s: TrainState) -> TrainState:
            if first["mode"] != "val":
                seen["val"].append(s.iter)
            return s

        def train_iter(s: TrainState) -> TrainState:
            first["mode"] = "train"
            return s

        def mark_val(s: TrainState) -> TrainState:
            first["mode"] = "val"
            return s

        hooks.append(Hook("ValSpy", "LOWEST", {"before_val_iter": val_iter, "after_val_iter": mark_val,
                                               "before_train_iter": train_iter}))
    kwargs = built.run_kwargs()
    kwargs["hooks"] = hooks
    run(TrainState(), built.table, **kwargs)

    assert [(r.epoch, r.iter, r.inner_iter, r.lr, r.momentum) for r in plan.rows] == seen["rows"]
    assert [i for i, e in plan.events() if e == "val"] == [i - 1 for i in seen["val"]]
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("epoch_", "iter_")))
    assert kept == sorted(plan.kept)
    records = [json.loads(line) for p in tmp_path.glob("*.log.json") for line in p.read_text().splitlines()]
    train = [r for r in records if r.get("mode") == "train"]
    evals = [r for r in records if "accuracy" in r]
    logged = [r for r in plan.rows if any(e.startswith("log:") for e in r.events)]
    if built.table.by == "epoch":
        assert [(r["epoch"], r["iter"]) for r in train] == [(r.epoch + 1, r.inner_iter + 1) for r in logged]
    else:
        assert [r["iter"] for r in train] == [r.iter + 1 for r in logged]
    assert len(evals) == sum("eval" in r.events for r in plan.rows) > 0
