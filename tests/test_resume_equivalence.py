"""Resume equals never stopping, for every shipped hook and its options.

Each case is a run of a tiny shuffled, dropout-using model with one set of hooks, saving a
checkpoint after every train iteration (and after every train epoch in an epoch-based run).
The same run is then resumed from several of those checkpoints into fresh objects (a new
model, optimizer, loaders and hooks, as a new process has) in another work dir, and must end
exactly where the uninterrupted run ended: weights, optimizer state, ``param_groups``,
``hook_states``, and every value a hook point saw after the resume point (LR and momentum of
every group before each iteration, every logged record).

Resume points: inside LR warmup, mid-epoch, at the end of an epoch's batches, at a val phase
(epoch checkpoint), and, iter-based, inside and at the end of train segments.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from fsm_trainer import Hook, TrainState, compile_workflow, run
from fsm_trainer.hooks import (
    Amp,
    checkpoint_hook,
    early_stopping_hook,
    ema_hook,
    eval_hook,
    iter_timer_hook,
    logger_hook,
    lr_updater,
    momentum_updater,
    nan_guard_hook,
    optimizer_hook,
    progress_bar_hook,
    tensorboard_logger_hook,
    text_logger_hook,
)
from fsm_trainer.hooks.logger_base import writer
from fsm_trainer.sampler import resumable_loader

EPOCH_LEN = 6  # train batches per epoch
KINDS = {
    "epoch": (compile_workflow([("train", 1), ("val", 1)], max_epochs=4), ["iter_2", "iter_9", "iter_12", "epoch_2"]),
    "iter": (compile_workflow([("train", 5), ("val", 2)], max_iters=20), ["iter_3", "iter_5", "iter_12", "iter_17"]),
}
TIMING = {"time", "data_time", "eta", "memory"}


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, targets)


def _data(n: int, seed: int) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.TensorDataset(torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g))


class Spy:
    """What the run's hook points saw: LR/momentum before each iteration, logged records."""

    def __init__(self) -> None:
        self.groups: list[tuple[int, list[tuple[float, float]]]] = []
        self.records: list[tuple[Any, ...]] = []

    def hooks(self, optimizer: torch.optim.Optimizer) -> list[Any]:
        def before(s: TrainState) -> TrainState:
            self.groups.append((s.iter, [(g["lr"], g.get("momentum", g.get("betas", (0,))[0]))
                                         for g in optimizer.param_groups]))
            return s

        def write(s: TrainState, r: Any) -> None:
            values = {k: v for k, v in r.values.items() if k not in TIMING}
            self.records.append((s.iter, r.mode, r.epoch, r.iter, sorted(values.items())))

        return [Hook("SpyGroups", "LOW", {"before_train_iter": before}),
                logger_hook(lambda ctx, by_epoch: writer(write), name="SpyLogger", interval=2)]


def build(kind: str, extra: Callable[[dict[str, Any]], list[Any]], *, adam: bool = False) -> dict[str, Any]:
    torch.manual_seed(0)
    model = Net()
    if adam:
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    train = resumable_loader(_data(4 * EPOCH_LEN, 0), batch_size=4, seed=0, shuffle=True)
    val = resumable_loader(_data(8, 1), batch_size=4, seed=0, shuffle=False)
    evaluate = resumable_loader(_data(8, 1), batch_size=4, seed=0, shuffle=False)
    env = {"model": model, "optimizer": optimizer, "val": evaluate, "kind": kind}
    return {"model": model, "optimizer": optimizer, "data_loaders": [train, val], "hooks": extra(env)}


def _opt_hook(env: dict[str, Any]) -> list[Any]:
    return [optimizer_hook()]


def lr(**cfg: Any) -> Callable[[dict[str, Any]], list[Any]]:
    return lambda env: [optimizer_hook(), lr_updater(**cfg)]


def mom(**cfg: Any) -> Callable[[dict[str, Any]], list[Any]]:
    return lambda env: [optimizer_hook(), momentum_updater(**cfg)]


def _warm(kind: str) -> dict[str, Any]:
    return {"warmup": kind, "warmup_iters": 4, "warmup_ratio": 0.1}


# every LR policy (with linear warmup), per iteration and, where mmcv allows it, per epoch
LR_CASES: dict[str, dict[str, Any]] = {
    "Fixed": {},
    "Step": {"step": [2]},
    "Exp": {"gamma": 0.8},
    "Poly": {"power": 1.0, "min_lr": 1e-4},
    "Inv": {"gamma": 0.1, "power": 0.5},
    "CosineAnnealing": {"min_lr": 1e-4},
    "FlatCosineAnnealing": {"start_percent": 0.5, "min_lr": 1e-4},
    "LinearAnnealing": {"min_lr": 1e-4},
}
ITER_ONLY_LR: dict[str, dict[str, Any]] = {
    "Cyclic": {"target_ratio": (10, 1e-4), "cyclic_times": 1, "step_ratio_up": 0.4},
    "OneCycle": {"max_lr": 0.1},
}
CASES: dict[str, Callable[[dict[str, Any]], list[Any]]] = {"optimizer": _opt_hook}
for _name, _cfg in LR_CASES.items():
    for _by_epoch in (True, False):
        CASES[f"lr-{_name}-by_epoch={_by_epoch}"] = lr(policy=_name, by_epoch=_by_epoch, **_cfg, **_warm("linear"))
for _name, _cfg in ITER_ONLY_LR.items():
    CASES[f"lr-{_name}"] = lr(policy=_name, by_epoch=False, **_cfg)
for _w in ("constant", "linear", "exp"):
    for _by_epoch in (True, False):
        CASES[f"lr-Step-warmup={_w}-by_epoch={_by_epoch}"] = lr(policy="Step", step=[2], by_epoch=_by_epoch, **_warm(_w))
CASES["lr-Step-warmup_by_epoch"] = lr(policy="Step", step=[3], warmup="linear", warmup_iters=1, warmup_by_epoch=True)
for _name, _cfg in {"Step": {"step": [2]}, "CosineAnnealing": {"min_momentum_ratio": 0.9},
                    "LinearAnnealing": {"min_momentum_ratio": 0.9}}.items():
    for _by_epoch in (True, False):
        CASES[f"momentum-{_name}-by_epoch={_by_epoch}"] = mom(policy=_name, by_epoch=_by_epoch, **_cfg,
                                                              **_warm("linear"))
CASES["momentum-Cyclic"] = mom(policy="Cyclic", by_epoch=False, target_ratio=(0.85 / 0.95, 1), cyclic_times=1)
CASES["momentum-OneCycle+lr-OneCycle"] = lambda env: [
    optimizer_hook(), lr_updater(policy="OneCycle", max_lr=0.1), momentum_updater(policy="OneCycle")]
CASES["ema"] = lambda env: [optimizer_hook(), ema_hook(momentum=0.1, warm_up=2)]
CASES["ema-interval2-buffers"] = lambda env: [optimizer_hook(), ema_hook(momentum=0.2, interval=2, update_buffers=True)]
CASES["eval-save_best"] = lambda env: [optimizer_hook(), eval_hook(env["val"], ["accuracy", "cross_entropy"],
                                                                  save_best="accuracy", interval=1 if env["kind"] == "epoch" else 4)]
CASES["eval-early_stopping"] = lambda env: [
    optimizer_hook(), eval_hook(env["val"], "cross_entropy", rule="less", interval=1 if env["kind"] == "epoch" else 3),
    early_stopping_hook("loss", patience=1, min_delta=10.0)]
CASES["nan_guard"] = lambda env: [optimizer_hook(), nan_guard_hook()]
CASES["grad_clip"] = lambda env: [optimizer_hook(grad_clip={"max_norm": 0.5})]
CASES["accumulation-3"] = lambda env: [optimizer_hook(cumulative_iters=3)]
CASES["amp-fp16-scaler"] = lambda env: [optimizer_hook(amp=Amp(device_type="cpu", dtype="float16",
                                                               loss_scale="dynamic"))]
CASES["loggers-2-and-3"] = lambda env: [optimizer_hook(), iter_timer_hook(), text_logger_hook(interval=3),
                                        text_logger_hook(interval=2, name="Text2", by_epoch=None)]
CASES["progress_bar"] = lambda env: [optimizer_hook(), progress_bar_hook(interval=2, file=_Sink())]
CASES["tensorboard"] = lambda env: [optimizer_hook(), tensorboard_logger_hook(interval=3)]
CASES["adamw-lr-cosine-momentum-cosine"] = lambda env: [
    optimizer_hook(), lr_updater(policy="CosineAnnealing", min_lr=0, by_epoch=False, **_warm("exp")),
    momentum_updater(policy="CosineAnnealing", min_momentum_ratio=0.9, by_epoch=False)]


class _Sink:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _applies(case: str, kind: str) -> bool:
    # by_epoch schedules need an epoch-based run (an iter-based one refuses them)
    return kind == "epoch" or not ("by_epoch=True" in case or case.endswith("warmup_by_epoch"))


def _checkpoints(kind: str) -> list[Any]:
    hooks = [checkpoint_hook(1, by_epoch=False, preempt=False, name="IterCheckpoint")]
    if kind == "epoch":
        hooks.append(checkpoint_hook(1, preempt=False))
    return hooks


def train(case: str, kind: str, work_dir: Path, resume: str | Path | None = None) -> dict[str, Any]:
    table = KINDS[kind][0]
    kw = build(kind, CASES[case], adam=case.startswith("adam"))
    spy = Spy()
    hooks = [*kw.pop("hooks"), *_checkpoints(kind), *spy.hooks(kw["optimizer"])]
    final = run(TrainState(), table, work_dir=work_dir, resume=resume, hooks=hooks, loss_fn=loss_fn, **kw)
    return {"final": final, "model": kw["model"].state_dict(), "optimizer": kw["optimizer"].state_dict(), "spy": spy}


def _same(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: {sorted(a)} != {sorted(b)}"
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _hook_states(final: TrainState, work_dir: Path) -> dict[str, Any]:
    # Saved paths are relative or inside the run's directory; compare them without it.
    def norm(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, str) and str(work_dir) in v:
            return v.replace(str(work_dir), "<work_dir>")
        return v

    return norm(dict(final.hook_states))


def assert_resume_equal(ref: dict[str, Any], ref_dir: Path, got: dict[str, Any], got_dir: Path, at: int) -> None:
    _same(ref["model"], got["model"], "model")
    _same(ref["optimizer"], got["optimizer"], "optimizer")
    _same(_hook_states(ref["final"], ref_dir), _hook_states(got["final"], got_dir), "hook_states")
    r, g = ref["final"], got["final"]
    assert (r.epoch, r.iter, r.stop) == (g.epoch, g.iter, g.stop)
    assert r.stop or r.phase == g.phase
    _same([g for g in ref["spy"].groups if g[0] >= at], got["spy"].groups, "param_groups before each iteration")
    # The resumed run's records are the reference's last ones: all those of later iterations,
    # and at the resume iteration those written after the save.
    rec, n = ref["spy"].records, len(got["spy"].records)
    assert sum(r[0] > at for r in rec) <= n <= sum(r[0] >= at for r in rec)
    _same(rec[len(rec) - n:], got["spy"].records, "log records")


PARAMS = [pytest.param(case, kind, id=f"{kind}-{case}") for kind in KINDS for case in CASES if _applies(case, kind)]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("case", "kind"), PARAMS)
def test_resume_equals_uninterrupted(case: str, kind: str, tmp_path: Path) -> None:
    ref_dir = tmp_path / "ref"
    ref = train(case, kind, ref_dir)
    for point in KINDS[kind][1]:
        saved = ref_dir / point
        if not saved.exists():  # the run stopped early (early stopping) before this point
            continue
        from fsm_trainer.checkpoint import load_checkpoint

        at = load_checkpoint(saved).state.iter
        got_dir = tmp_path / f"resumed-{point}"
        got = train(case, kind, got_dir, resume=saved)
        assert_resume_equal(ref, ref_dir, got, got_dir, at)
