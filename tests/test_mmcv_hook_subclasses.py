"""Subclasses of mmcv's hook classes on ``fsm_trainer.mmcv`` run mmcv's logic with their overrides.

An unsubclassed hook class runs as fsm_trainer's shipped hook; a subclass overriding a point or
a documented extension method runs as a class hook on mmcv's logic (``super()`` works). Here,
for every such class on both runners: a subclass whose override only calls ``super()`` gives
what the shipped hook gives (the LR and momentum before every train iteration, the final
weights bit for bit, the checkpoints written, the log records up to times); a subclass that
changes something has that effect; the class paths that keep state resume exactly after a
kill. ``LoggerHook`` (mmcv's base for custom loggers) is compared with mmcv 1.7.2 itself:
``tests/golden/mmcv_api/logger.json``, written by ``tools/record_mmcv_logger.py``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fsm_trainer.mmcv as api
from fsm_trainer.checkpoint import load_checkpoint
from fsm_trainer.mmcv import EpochBasedRunner, Hook, IterBasedRunner

ROOT = Path(__file__).resolve().parent.parent
LOGGER = logging.getLogger("mmcv_hook_subclasses")
MAX = {"epoch": 3, "iter": 12}
FLOW = {"epoch": [("train", 2), ("val", 1)], "iter": [("train", 4), ("val", 2)]}
TIMES = ("time", "data_time", "memory")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    def train_step(self, data: Any, optimizer: Any, **kwargs: Any) -> dict[str, Any]:
        x, y = data
        loss = torch.nn.functional.cross_entropy(self(x), y)
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": len(y)}

    def val_step(self, data: Any, optimizer: Any = None, **kwargs: Any) -> dict[str, Any]:
        with torch.no_grad():
            return self.train_step(data, optimizer)


def data(n: int) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


class Stop(Exception):
    """Raised by :class:`Killer`: the process dies there."""


class Killer(Hook):
    def __init__(self, at: int) -> None:
        self.at = at

    def before_train_iter(self, runner: Any) -> None:
        if runner.iter == self.at:
            raise Stop(runner.iter)


class Trace(Hook):
    """LR and momentum of the first param group before every train iteration (after the updaters)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float, float]] = []

    def before_train_iter(self, runner: Any) -> None:
        self.seen.append((runner.iter, runner.current_lr()[0], runner.current_momentum()[0]))


class Run(NamedTuple):
    runner: Any
    model: Net
    lrs: list[tuple[int, float, float]]
    wd: Path

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.named_parameters()}

    @property
    def checkpoints(self) -> list[str]:
        return sorted(p.name for p in self.wd.iterdir() if (p / "manifest.json").is_file())

    def records(self, mode: str | None = None, *, times: bool = False) -> list[dict[str, Any]]:
        """The ``.log.json`` records (of ``mode``), without the meta line and, unless ``times``, the times."""
        (path,) = self.wd.glob("*.log.json")
        out = []
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if "mode" in rec and (mode is None or rec["mode"] == mode):
                out.append({k: v for k, v in rec.items() if times or k not in TIMES})
        return out


def train(kind: str, wd: Path, *, lr: Any = None, momentum: Any = None, optimizer: Any = None, checkpoint: Any = None,
          timer: Any = None, log: bool = True, hooks: tuple[tuple[Any, str], ...] = (),
          workflow: list[tuple[str, int]] | None = None, resume: Path | None = None, stop_at: int | None = None,
          meta: dict[str, Any] | None = None, setup: Callable[[Any], None] | None = None) -> Run:
    """A small training run through mmcv's API; ``stop_at`` kills it before that train iteration."""
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    wd.mkdir(parents=True, exist_ok=True)
    if kind == "epoch":
        runner: Any = EpochBasedRunner(model, optimizer=opt, work_dir=str(wd), logger=LOGGER, meta=meta,
                                       max_epochs=MAX[kind])
    else:
        runner = IterBasedRunner(model, optimizer=opt, work_dir=str(wd), logger=LOGGER, meta=meta, max_iters=MAX[kind])
    log_config = {"interval": 2, "hooks": [{"type": "TextLoggerHook"}]} if log else None
    runner.register_training_hooks(lr, optimizer if optimizer is not None else {"grad_clip": {"max_norm": 1.0}},
                                   checkpoint, log_config, momentum, timer)
    for hook, priority in hooks:
        runner.register_hook(hook, priority=priority)
    trace = Trace()
    runner.register_hook(trace, priority="LOW")
    if stop_at is not None:
        runner.register_hook(Killer(stop_at), priority="HIGHEST")
    if setup is not None:
        setup(runner)
    if resume is not None:
        runner.resume(str(resume))
    loaders = [DataLoader(data(22), batch_size=4), DataLoader(data(10), batch_size=5)]
    flow = workflow or FLOW[kind]
    runner.run(loaders[: len(flow)], flow)
    return Run(runner, model, trace.seen, wd)


def calling_super(cls: type, point: str) -> type:
    """A subclass of ``cls`` whose ``point`` only calls ``super().point(...)``."""

    def method(self: Any, *args: Any) -> Any:
        return getattr(super(sub, self), point)(*args)

    sub = type(f"My{cls.__name__}", (cls,), {point: method, "__module__": __name__})
    return sub


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------------- the differential, class by class


class Case(NamedTuple):
    cls: type
    slot: str  # the train() argument taking the hook ("hooks": registered with `priority`)
    kwargs: Callable[[str], dict[str, Any]]
    point: Callable[[str], str]
    priority: str = "NORMAL"
    workflow: Callable[[str], list[tuple[str, int]] | None] = lambda kind: None
    extra: Callable[[str], dict[str, Any]] = lambda kind: {}


def _by_kind(epoch: Any, it: Any) -> Callable[[str], Any]:
    return lambda kind: epoch if kind == "epoch" else it


CASES = {
    "CheckpointHook": Case(api.CheckpointHook, "checkpoint",
                           _by_kind({"interval": 1, "max_keep_ckpts": 2},
                                    {"interval": 3, "by_epoch": False, "max_keep_ckpts": 2}),
                           _by_kind("after_train_epoch", "after_train_iter")),
    "IterTimerHook": Case(api.IterTimerHook, "timer", lambda kind: {}, lambda kind: "before_iter"),
    "TextLoggerHook": Case(api.TextLoggerHook, "hooks",
                           _by_kind({"interval": 2, "ignore_last": False}, {"interval": 3, "by_epoch": False}),
                           lambda kind: "after_train_iter", priority="VERY_LOW", extra=lambda kind: {"log": False}),
    "TensorboardLoggerHook": Case(api.TensorboardLoggerHook, "hooks",
                                  _by_kind({"interval": 2}, {"interval": 3, "by_epoch": False}),
                                  lambda kind: "log", priority="VERY_LOW"),
    "EMAHook": Case(api.EMAHook, "hooks", lambda kind: {"momentum": 0.1, "warm_up": 3, "interval": 2},
                    lambda kind: "after_train_iter", workflow=_by_kind(None, [("train", 1)]),
                    extra=lambda kind: {"checkpoint": {"interval": MAX[kind], "by_epoch": kind == "epoch"}}),
    "EmptyCacheHook": Case(api.EmptyCacheHook, "hooks", lambda kind: {"before_epoch": True, "after_iter": True},
                           lambda kind: "after_epoch"),
    "SyncBuffersHook": Case(api.SyncBuffersHook, "hooks", lambda kind: {}, lambda kind: "after_epoch"),
    "GradientCumulativeOptimizerHook": Case(api.GradientCumulativeOptimizerHook, "optimizer",
                                            lambda kind: {"cumulative_iters": 5, "grad_clip": {"max_norm": 1.0}},
                                            lambda kind: "after_train_iter"),
    "Fp16OptimizerHook": Case(api.Fp16OptimizerHook, "optimizer",
                              lambda kind: {"loss_scale": 512.0, "grad_clip": {"max_norm": 1.0}},
                              lambda kind: "after_train_iter"),
    "GradientCumulativeFp16OptimizerHook": Case(api.GradientCumulativeFp16OptimizerHook, "optimizer",
                                                lambda kind: {"cumulative_iters": 4, "loss_scale": "dynamic"},
                                                lambda kind: "after_train_iter"),
    "StepMomentumUpdaterHook": Case(api.StepMomentumUpdaterHook, "momentum",
                                    _by_kind({"step": [2], "warmup": "linear", "warmup_iters": 4},
                                             {"step": [6], "by_epoch": False, "warmup": "exp", "warmup_iters": 3}),
                                    lambda kind: "before_train_iter"),
    "CosineAnnealingMomentumUpdaterHook": Case(api.CosineAnnealingMomentumUpdaterHook, "momentum",
                                               _by_kind({"min_momentum_ratio": 0.5, "warmup": "constant",
                                                         "warmup_iters": 3},
                                                        {"min_momentum": 0.8, "by_epoch": False}),
                                               lambda kind: "before_train_epoch"),
    "LinearAnnealingMomentumUpdaterHook": Case(api.LinearAnnealingMomentumUpdaterHook, "momentum",
                                               _by_kind({"min_momentum": 0.5},
                                                        {"min_momentum_ratio": 0.7, "by_epoch": False,
                                                         "warmup": "linear", "warmup_iters": 4}),
                                               lambda kind: "before_train_iter"),
    "CyclicMomentumUpdaterHook": Case(api.CyclicMomentumUpdaterHook, "momentum",
                                      lambda kind: {"cyclic_times": 2, "step_ratio_up": 0.5, "gamma": 0.8},
                                      lambda kind: "before_train_iter"),
    "OneCycleMomentumUpdaterHook": Case(api.OneCycleMomentumUpdaterHook, "momentum",
                                        _by_kind({"base_momentum": 0.8, "max_momentum": 0.95},
                                                 {"pct_start": 0.4, "three_phase": True}),
                                        lambda kind: "before_run"),
    "CyclicLrUpdaterHook": Case(api.CyclicLrUpdaterHook, "lr",
                                _by_kind({"target_ratio": (5, 0.1), "cyclic_times": 2, "gamma": 0.9},
                                         {"target_ratio": 4.0, "warmup": "linear", "warmup_iters": 3}),
                                lambda kind: "before_train_iter"),
    "OneCycleLrUpdaterHook": Case(api.OneCycleLrUpdaterHook, "lr",
                                  _by_kind({"max_lr": 0.5, "pct_start": 0.3, "anneal_strategy": "linear"},
                                           {"max_lr": [0.4], "three_phase": True, "total_steps": 14}),
                                  lambda kind: "before_train_iter"),
}


def _train_case(case: Case, kind: str, wd: Path, hook: Any) -> Run:
    kw: dict[str, Any] = dict(case.extra(kind))
    if case.slot == "hooks":
        kw["hooks"] = ((hook, case.priority),)
    else:
        kw[case.slot] = hook
    return train(kind, wd, workflow=case.workflow(kind), **kw)


def _tensorboard_scalars(directory: Path, prefix: str = "") -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory))
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"] if t.startswith(prefix)}


@pytest.mark.parametrize("kind", ["epoch", "iter"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_subclass_calling_super_equals_the_shipped_hook(name: str, kind: str, tmp_path: Path) -> None:
    """A subclass overriding a point with ``super()`` only: same LR/momentum, weights, checkpoints, logs."""
    case = CASES[name]
    shipped = case.cls(**case.kwargs(kind))
    sub_cls = calling_super(case.cls, case.point(kind))
    subclassed = sub_cls(**case.kwargs(kind))
    assert not shipped.customised() and subclassed.customised()
    a = _train_case(case, kind, tmp_path / "shipped", shipped)
    b = _train_case(case, kind, tmp_path / "subclass", subclassed)
    assert len(a.lrs) == (MAX["epoch"] * 6 if kind == "epoch" else MAX["iter"])
    assert a.lrs == b.lrs
    assert_same_weights(a.weights, b.weights)
    assert a.checkpoints == b.checkpoints
    for ck in a.checkpoints:
        sa, sb = load_checkpoint(a.wd / ck), load_checkpoint(b.wd / ck)
        assert (sa.state.epoch, sa.state.iter, sa.state.inner_iter) == (sb.state.epoch, sb.state.iter,
                                                                        sb.state.inner_iter)
        assert_same_weights({k: sa.model[k] for k in a.weights}, {k: sb.model[k] for k in a.weights})
    mode = "train" if kind == "iter" else None  # the shipped loggers also log iter-based val segments
    assert a.records(mode) == b.records(mode)
    assert a.records("train"), "nothing was logged"
    assert all("time" in r and "data_time" in r for r in b.records("train", times=True))
    if name == "CheckpointHook":
        assert a.checkpoints == (["epoch_2", "epoch_3"] if kind == "epoch" else ["iter_12", "iter_9"])
        assert (b.wd / "latest").exists()
        assert Path(b.runner.meta["hook_msgs"]["last_ckpt"]).name == a.checkpoints[-1 if kind == "epoch" else 0]
    if name == "TensorboardLoggerHook":
        prefix = "train/" if kind == "iter" else ""
        ta, tb = _tensorboard_scalars(a.wd / "tf_logs", prefix), _tensorboard_scalars(b.wd / "tf_logs", prefix)
        assert ta == tb and "train/loss" in ta
    if name == "EMAHook":
        ck = a.checkpoints[-1]
        shipped_ema = load_checkpoint(a.wd / ck).hooks["EMAHook"]["ema"]
        class_ema = load_checkpoint(b.wd / ck).model
        for k in a.weights:
            assert torch.equal(shipped_ema[k], class_ema[f"ema_{k.replace('.', '_')}"]), k


# ---------------------------------------------------------------------- overrides that change the behaviour


def _momentum_kwargs(cls: type) -> dict[str, Any]:
    return {
        api.StepMomentumUpdaterHook: {"step": 1},
        api.CosineAnnealingMomentumUpdaterHook: {"min_momentum_ratio": 0.5},
        api.LinearAnnealingMomentumUpdaterHook: {"min_momentum": 0.5, "warmup": "linear", "warmup_iters": 4},
        api.CyclicMomentumUpdaterHook: {"cyclic_times": 2},
        api.OneCycleMomentumUpdaterHook: {"pct_start": 0.5},
    }.get(cls, {})


MOMENTUM_CLASSES = [api.MomentumUpdaterHook, api.StepMomentumUpdaterHook, api.CosineAnnealingMomentumUpdaterHook,
                    api.LinearAnnealingMomentumUpdaterHook, api.CyclicMomentumUpdaterHook,
                    api.OneCycleMomentumUpdaterHook]


@pytest.mark.parametrize("cls", MOMENTUM_CLASSES, ids=lambda c: c.__name__)
def test_get_momentum_override_is_the_momentum(cls: type, tmp_path: Path) -> None:
    """``get_momentum`` returning a constant: that momentum before every train iteration (and mmcv's warmup on it)."""

    class Constant(cls):  # type: ignore[valid-type,misc]
        def get_momentum(self, runner: Any, base_momentum: Any) -> float:
            return 0.5

    run = train("epoch", tmp_path, momentum=Constant(**_momentum_kwargs(cls)))
    momenta = [m for _, _, m in run.lrs]
    if cls is api.LinearAnnealingMomentumUpdaterHook:  # linear warmup divides 0.5 by 1 - (1 - i / 4) * (1 - 0.9)
        assert momenta[:4] == [0.5 / (1 - (1 - i / 4) * (1 - 0.9)) for i in range(4)]
        momenta = momenta[4:]
    assert momenta and set(momenta) == {0.5}


@pytest.mark.parametrize("cls", MOMENTUM_CLASSES[1:], ids=lambda c: c.__name__)
def test_get_momentum_super_scaled(cls: type, tmp_path: Path) -> None:
    """``get_momentum`` scaling ``super().get_momentum(...)``: the shipped hook's momentum, scaled."""

    class Half(cls):  # type: ignore[valid-type,misc]
        def get_momentum(self, runner: Any, base_momentum: Any) -> float:
            return float(super().get_momentum(runner, base_momentum)) / 2

    kw = _momentum_kwargs(cls)
    shipped = train("epoch", tmp_path / "a", momentum=cls(**kw), log=False)
    half = train("epoch", tmp_path / "b", momentum=Half(**kw), log=False)
    assert [m / 2 for _, _, m in shipped.lrs] == [m for _, _, m in half.lrs]
    assert len({m for _, _, m in shipped.lrs}) >= 3


@pytest.mark.parametrize("kind", ["epoch", "iter"])
@pytest.mark.parametrize("cls", [api.CyclicLrUpdaterHook, api.OneCycleLrUpdaterHook], ids=lambda c: c.__name__)
def test_get_lr_override_of_cyclic_and_one_cycle(cls: type, kind: str, tmp_path: Path) -> None:
    """``get_lr`` doubling ``super().get_lr(...)`` doubles the shipped LR at every iteration; the phases are mmcv's."""

    class Double(cls):  # type: ignore[valid-type,misc]
        def get_lr(self, runner: Any, base_lr: float) -> float:
            return 2 * float(super().get_lr(runner, base_lr))

    kw: dict[str, Any] = {"max_lr": 0.3} if cls is api.OneCycleLrUpdaterHook else {"cyclic_times": 2}
    shipped = train(kind, tmp_path / "a", lr=cls(**kw), log=False)
    hook = Double(**kw)
    doubled = train(kind, tmp_path / "b", lr=hook, log=False)
    assert [2 * lr for _, lr, _ in shipped.lrs] == [lr for _, lr, _ in doubled.lrs]
    n = MAX["epoch"] * 6 if kind == "epoch" else MAX["iter"]
    if cls is api.CyclicLrUpdaterHook:
        assert hook.max_iter_per_phase == n // 2 and hook.lr_phases[0][:3] == [0, int(0.4 * (n // 2)), 1]
    else:
        assert hook.base_lr == [0.3 / 25] and hook.lr_phases[-1][0] == n - 1


def test_checkpoint_hook_subclass_that_also_writes_a_file(tmp_path: Path) -> None:
    """A ``_save_checkpoint`` override runs at mmcv's points; out_dir, filename_tmpl and max_keep_ckpts as mmcv."""
    written: list[str] = []

    class Also(api.CheckpointHook):
        def _save_checkpoint(self, runner: Any) -> None:
            super()._save_checkpoint(runner)
            (Path(self.out_dir) / f"note_{runner.epoch + 1}.txt").write_text(runner.meta["hook_msgs"]["last_ckpt"])
            written.append(Path(runner.meta["hook_msgs"]["last_ckpt"]).name)

    out = tmp_path / "elsewhere"
    run = train("epoch", tmp_path / "wd", checkpoint=Also(interval=1, out_dir=str(out), max_keep_ckpts=2,
                                                          filename_tmpl="model_{}.pth"))
    where = out / "wd"  # mmcv: out_dir / basename(work_dir)
    assert written == ["model_1", "model_2", "model_3"]
    assert sorted(p.name for p in where.iterdir() if (p / "manifest.json").is_file()) == ["model_2", "model_3"]
    assert [p.read_text() for p in sorted(where.glob("note_*.txt"))] == [str(where / f"model_{i}") for i in (1, 2, 3)]
    assert not run.checkpoints  # nothing in work_dir
    ck = load_checkpoint(where / "model_3")
    assert (ck.state.epoch, ck.state.iter) == (3, 18)
    assert_same_weights({k: ck.model[k] for k in run.weights}, run.weights)


def test_checkpoint_hook_subclass_iter_based_keeps_mmcv_max_keep_rule(tmp_path: Path) -> None:
    """By iterations, with save_last: the last checkpoint is kept, and removal stops at the first gap (mmcv)."""

    class Mine(api.CheckpointHook):
        def after_train_iter(self, runner: Any) -> None:
            super().after_train_iter(runner)

    run = train("iter", tmp_path, checkpoint=Mine(interval=5, by_epoch=False, max_keep_ckpts=1), log=False)
    # saves at 5, 10 (removes 5) and 12 (last: 12 - 5 = 7 does not exist, so 10 stays)
    assert run.checkpoints == ["iter_10", "iter_12"]


class Collect(api.LoggerHook):
    """A custom logger: what ``log`` sees."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[tuple[str, int, int, dict[str, Any]]] = []

    def log(self, runner: Any) -> None:
        self.seen.append((self.get_mode(runner), runner.iter, runner.inner_iter, dict(runner.log_buffer.output)))


class Losses(Hook):
    def __init__(self) -> None:
        self.train: list[tuple[int, float, int]] = []

    def after_train_iter(self, runner: Any) -> None:
        self.train.append((runner.iter, runner.outputs["log_vars"]["loss"], runner.outputs["num_samples"]))


def test_custom_logger_sees_the_interval_averages(tmp_path: Path) -> None:
    """A ``LoggerHook`` subclass's ``log`` gets the buffer averaged over its interval (weighted by num_samples)."""
    collect, losses = Collect(interval=4), Losses()
    train("epoch", tmp_path, log=False, hooks=((collect, "VERY_LOW"), (losses, "NORMAL")))
    assert collect.reset_flag  # the last logger clears the averages
    train_logs = [s for s in collect.seen if s[0] == "train"]
    assert [(it, inner) for _, it, inner, _ in train_logs] == [(3, 3), (9, 3), (15, 3)]
    for _, it, _, out in train_logs:
        window = [(loss, n) for i, loss, n in losses.train if it - 4 < i <= it]
        assert out["loss"] == pytest.approx(sum(v * n for v, n in window) / sum(n for _, n in window), rel=1e-12)
        assert {"time", "data_time", "grad_norm"} <= set(out)
    val_logs = [s for s in collect.seen if s[0] == "val"]  # after epochs 2 and 3 (mmcv runs val after the last)
    assert [(it, inner) for _, it, inner, _ in val_logs] == [(12, 1), (18, 1)] and "time" in val_logs[0][3]


def test_custom_logger_iter_based_and_by_epoch_false(tmp_path: Path) -> None:
    """In an iter-based run the interval counts ``iter``; averages another logger left ready are logged too."""
    collect = Collect(interval=5, by_epoch=False)
    run = train("iter", tmp_path, hooks=((collect, "VERY_LOW"),))
    # its own interval (iter + 1 = 5, 10) and the text logger's (every 2), which leaves its averages ready (mmcv)
    assert [it for _, it, _, _ in collect.seen] == [1, 3, 4, 5, 7, 9, 11]
    assert collect.reset_flag  # registered after the text logger: the last logger clears the averages
    assert [r["iter"] for r in run.records("train")] == [2, 4, 6, 8, 10, 12]


def test_text_logger_subclass_log_override_adds_to_the_records(tmp_path: Path) -> None:
    """``log`` adding a value then calling ``super().log``: the value is in the .log.json and the text lines."""

    class Tagged(api.TextLoggerHook):
        def log(self, runner: Any) -> Any:
            runner.log_buffer.output["tag"] = 7
            return super().log(runner)

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    try:
        run = train("epoch", tmp_path, log=False, hooks=((Tagged(interval=3), "VERY_LOW"),), meta={"exp_name": "x"})
    finally:
        LOGGER.removeHandler(handler)
    records = run.records()
    assert records and all(r["tag"] == 7 for r in records)
    assert [(r["mode"], r["epoch"], r["iter"]) for r in records] == [
        ("train", 1, 3), ("train", 1, 6), ("train", 2, 3), ("train", 2, 6), ("val", 2, 2), ("train", 3, 3),
        ("train", 3, 6), ("val", 3, 2)]
    text = [x for x in lines if x.startswith(("Epoch", "Iter"))]
    assert len(text) == len(records) and all(x.endswith("tag: 7") for x in text)
    assert text[0].startswith("Epoch [1][3/6]\tlr: 1.000e-01, eta: ")
    (log_file,) = tmp_path.glob("*.log")
    assert log_file.read_text().splitlines() == text
    assert json.loads(next(tmp_path.glob("*.log.json")).read_text().splitlines()[0]) == {"exp_name": "x"}
    assert "Exp name: x" in lines


def test_timer_subclass_adds_a_value(tmp_path: Path) -> None:
    """An ``IterTimerHook`` subclass writing into the buffer after ``super()``: logged with the times."""

    class Counting(api.IterTimerHook):
        def after_iter(self, runner: Any) -> None:
            super().after_iter(runner)
            runner.log_buffer.update({"counted": 1.0})

    run = train("epoch", tmp_path, timer=Counting())
    records = run.records(times=True)
    assert records and all(r["counted"] == 1.0 and r["time"] >= 0 and r["data_time"] >= 0 for r in records)


def test_ema_subclass_without_the_epoch_swap(tmp_path: Path) -> None:
    """Not swapping at the epoch end: the model keeps the trained weights, the buffers hold the averages."""

    class NoSwap(api.EMAHook):
        def after_train_epoch(self, runner: Any) -> None:
            pass

        def before_train_epoch(self, runner: Any) -> None:
            pass

    plain = train("epoch", tmp_path / "plain", log=False)
    run = train("epoch", tmp_path / "ema", log=False, hooks=((NoSwap(momentum=0.5, warm_up=1), "NORMAL"),))
    assert_same_weights(plain.weights, run.weights)
    buffers = dict(run.model.named_buffers())
    assert set(buffers) == {"ema_fc_weight", "ema_fc_bias"}
    assert not torch.equal(buffers["ema_fc_weight"], run.weights["fc.weight"])


def test_empty_cache_and_sync_buffers_subclasses_call_at_mmcv_points(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """EmptyCacheHook's generic points and SyncBuffersHook's after_epoch run at every epoch and iteration."""
    import fsm_trainer.hooks.dist as dist_hooks
    import fsm_trainer.mmcv.hooks.misc as misc

    calls = {"empty": 0, "sync": 0}
    monkeypatch.setattr(misc, "empty_cache", lambda: calls.__setitem__("empty", calls["empty"] + 1))
    monkeypatch.setattr(dist_hooks, "sync_buffers", lambda m: calls.__setitem__("sync", calls["sync"] + 1))
    empty = calling_super(api.EmptyCacheHook, "after_epoch")(before_epoch=True, after_iter=True)
    sync = calling_super(api.SyncBuffersHook, "after_epoch")()
    off = calling_super(api.SyncBuffersHook, "after_epoch")(distributed=False)
    train("epoch", tmp_path, log=False, hooks=((empty, "NORMAL"), (sync, "NORMAL"), (off, "NORMAL")))
    epochs, iters = 5, 18 + 4  # train, train, val, train, val (as mmcv); 6 train batches an epoch, 2 val
    assert calls == {"empty": 2 * epochs + iters, "sync": epochs}


def test_fp16_subclass_keeps_the_scaler_in_meta(tmp_path: Path) -> None:
    """The class path's GradScaler grows as configured, and its state is ``runner.meta['fp16']['loss_scaler']``."""
    grow = calling_super(api.Fp16OptimizerHook, "after_train_iter")(loss_scale={"init_scale": 256.0,
                                                                                "growth_interval": 1})
    run = train("epoch", tmp_path / "grow", optimizer=grow, log=False)
    assert run.runner.meta["fp16"]["loss_scaler"]["scale"] == 256.0 * 2**18
    assert grow.loss_scaler.get_scale() == 256.0 * 2**18
    static = calling_super(api.Fp16OptimizerHook, "after_train_iter")(loss_scale=512.0)
    run = train("iter", tmp_path / "static", optimizer=static, log=False)
    assert run.runner.meta["fp16"]["loss_scaler"]["scale"] == 512.0
    assert static.amp.device_type == "cpu" and static.loss_scaler._device == "cpu"


# ---------------------------------------------------------------------- killed and resumed


def _sub(cls: type, point: str = "before_train_iter") -> Callable[..., Any]:
    return calling_super(cls, point)


RESUMES: dict[str, tuple[str, Callable[[], dict[str, Any]], int, str]] = {
    # name: (kind, train() arguments, the iteration the process dies before, the checkpoint resumed)
    "lr and momentum warmup, inside an epoch": ("epoch", lambda: {
        "lr": _sub(api.StepLrUpdaterHook)(step=[2], warmup="linear", warmup_iters=5),
        "momentum": _sub(api.CosineAnnealingMomentumUpdaterHook)(min_momentum_ratio=0.5, warmup="exp",
                                                                 warmup_iters=5),
        "checkpoint": {"interval": 2, "by_epoch": False}}, 3, "iter_2"),
    "cyclic lr, one-cycle momentum": ("iter", lambda: {
        "lr": _sub(api.CyclicLrUpdaterHook)(cyclic_times=2, gamma=0.5),
        "momentum": _sub(api.OneCycleMomentumUpdaterHook)(three_phase=True),
        "checkpoint": {"interval": 5}}, 7, "iter_5"),
    "one-cycle lr, cyclic and step momentum": ("epoch", lambda: {
        "lr": _sub(api.OneCycleLrUpdaterHook)(max_lr=0.4),
        "momentum": _sub(api.CyclicMomentumUpdaterHook)(cyclic_times=3),
        "checkpoint": {"interval": 1}}, 12, "epoch_2"),
    "gradient accumulation inside a group": ("iter", lambda: {
        "optimizer": _sub(api.GradientCumulativeOptimizerHook, "after_train_iter")(
            cumulative_iters=5, grad_clip={"max_norm": 1.0}),
        "checkpoint": {"interval": 3}}, 4, "iter_3"),
    "fp16 accumulation, growing loss scale": ("epoch", lambda: {
        "optimizer": _sub(api.GradientCumulativeFp16OptimizerHook, "after_train_iter")(
            cumulative_iters=4, loss_scale={"init_scale": 64.0, "growth_interval": 1}),
        "checkpoint": {"interval": 5, "by_epoch": False}}, 7, "iter_5"),
    "ema buffers": ("epoch", lambda: {
        "hooks": ((_sub(api.EMAHook, "after_train_iter")(momentum=0.2, warm_up=2), "NORMAL"),),
        "checkpoint": {"interval": 1}}, 12, "epoch_2"),
    "checkpoints of a CheckpointHook subclass, by epoch": ("epoch", lambda: {
        "checkpoint": _sub(api.CheckpointHook, "after_train_epoch")(interval=1)}, 6, "epoch_1"),
    "checkpoints of a CheckpointHook subclass, by iteration": ("iter", lambda: {
        "checkpoint": _sub(api.CheckpointHook, "after_train_iter")(interval=4, by_epoch=False),
        "lr": _sub(api.CyclicLrUpdaterHook)()}, 8, "iter_8"),
    "a custom logger": ("epoch", lambda: {
        "hooks": ((Collect(interval=4), "VERY_LOW"),), "checkpoint": {"interval": 1}}, 7, "epoch_1"),
}


@pytest.mark.parametrize("name", list(RESUMES))
def test_killed_and_resumed_equals_uninterrupted(name: str, tmp_path: Path) -> None:
    """Killed after a checkpoint, resumed by a fresh runner: the same LR/momentum from there, the same weights."""
    kind, args, stop_at, ckpt = RESUMES[name]
    full_args = args()
    full = train(kind, tmp_path / "full", **full_args)
    with pytest.raises(Stop):
        train(kind, tmp_path / "killed", stop_at=stop_at, **args())
    resumed_args = args()
    resumed = train(kind, tmp_path / "resumed", resume=tmp_path / "killed" / ckpt, **resumed_args)
    start = resumed.lrs[0][0]
    assert 0 < start <= stop_at
    assert resumed.lrs == [x for x in full.lrs if x[0] >= start]
    assert_same_weights(full.weights, resumed.weights)
    assert_same_weights(dict(full.model.named_buffers()), dict(resumed.model.named_buffers()))
    assert full.runner.meta.get("fp16") == resumed.runner.meta.get("fp16")
    after = resumed.records()
    assert after and full.records()[-len(after):] == after
    if name == "ema buffers":
        assert {n for n, _ in resumed.model.named_buffers()} == {"ema_fc_weight", "ema_fc_bias"}
    if name.startswith("fp16"):
        assert resumed.runner.meta["fp16"]["loss_scaler"]["scale"] == 64.0 * 2 ** (18 // 4 + 1)
    if name == "a custom logger":
        def seen(run_args: dict[str, Any]) -> list[Any]:
            (collect, _), = run_args["hooks"]
            return [(mode, it, inner, {k: v for k, v in out.items() if k not in TIMES})
                    for mode, it, inner, out in collect.seen if it >= start]

        assert seen(resumed_args) and seen(resumed_args) == seen(full_args)


# ---------------------------------------------------------------------- LoggerHook against mmcv 1.7.2


def _logger_tool() -> Any:
    spec = importlib.util.spec_from_file_location("record_mmcv_logger", ROOT / "tools" / "record_mmcv_logger.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("record_mmcv_logger", mod)
    spec.loader.exec_module(mod)
    return mod


GOLDEN = json.loads((ROOT / "tests" / "golden" / "mmcv_api" / "logger.json").read_text())


@pytest.mark.parametrize("kind", ["epoch", "iter"])
def test_custom_logger_calls_equal_mmcv(kind: str) -> None:
    """Two LoggerHook subclasses before the text logger: every ``log`` call, with its counters, mode, epoch,
    iter and tag names, equals mmcv 1.7.2's (an EvalHook's metrics and val epochs included)."""
    tool = _logger_tool()
    ns = types.SimpleNamespace(Hook=api.Hook, HOOKS=api.HOOKS, LoggerHook=api.LoggerHook, EvalHook=api.EvalHook,
                               EpochBasedRunner=api.EpochBasedRunner, IterBasedRunner=api.IterBasedRunner)
    ours, gold = tool.scenario(ns, kind), GOLDEN[kind]
    assert set(gold) == {"A", "B"} and all(len(gold[t]) >= 3 for t in gold)
    modes = {r[2] for t in gold for r in gold[t]}
    assert modes == ({"train", "val"} if kind == "epoch" else {"train"})
    assert ours == gold


# ---------------------------------------------------------------------- MLflow and Weights & Biases


def _fake_mlflow(calls: list[Any]) -> tuple[types.ModuleType, types.ModuleType]:
    mlflow = types.ModuleType("mlflow")
    active: list[Any] = [None]

    def record(name: str) -> Callable[..., None]:
        return lambda *a, **k: calls.append((name, *a))

    def start_run(run_name: Any = None) -> None:
        active[0] = object()
        calls.append(("start_run",))

    def end_run() -> None:
        active[0] = None
        calls.append(("end_run",))

    for name in ("set_tracking_uri", "set_experiment", "set_tags", "log_params"):
        setattr(mlflow, name, record(name))
    mlflow.log_metrics = lambda metrics, step=None: calls.append(("log_metrics", dict(metrics), step))  # type: ignore[attr-defined]
    mlflow.active_run = lambda: active[0]  # type: ignore[attr-defined]
    mlflow.start_run = start_run  # type: ignore[attr-defined]
    mlflow.end_run = end_run  # type: ignore[attr-defined]
    pytorch = types.ModuleType("mlflow.pytorch")
    pytorch.log_model = lambda model, name=None, **k: calls.append(("log_model", type(model).__name__, name))  # type: ignore[attr-defined]
    mlflow.pytorch = pytorch  # type: ignore[attr-defined]
    return mlflow, pytorch


class _Artifact:
    def __init__(self, name: str, type: str) -> None:
        self.files: list[str] = []

    def add_file(self, path: str) -> None:
        self.files.append(Path(path).name)


def _fake_wandb(calls: list[Any]) -> types.ModuleType:
    wandb = types.ModuleType("wandb")
    wandb.run = None  # type: ignore[attr-defined]

    def init(**kwargs: Any) -> None:
        wandb.run = types.SimpleNamespace(log_artifact=lambda a: calls.append(("log_artifact", sorted(a.files))))  # type: ignore[attr-defined]
        calls.append(("init", kwargs))

    def finish() -> None:
        wandb.run = None  # type: ignore[attr-defined]
        calls.append(("finish",))

    wandb.init = init  # type: ignore[attr-defined]
    wandb.finish = finish  # type: ignore[attr-defined]
    wandb.log = lambda tags, step=None, commit=True: calls.append(("log", dict(tags), step, commit))  # type: ignore[attr-defined]
    wandb.define_metric = lambda metric, summary=None: calls.append(("define_metric", metric, summary))  # type: ignore[attr-defined]
    wandb.log_artifact = lambda a: calls.append(("log_artifact", sorted(a.files)))  # type: ignore[attr-defined]
    wandb.Artifact = _Artifact  # type: ignore[attr-defined]
    return wandb


def _train_only(calls: list[Any], name: str) -> list[Any]:
    return [c for c in calls if c[0] == name and any(k.startswith("train/") for k in c[1])]


@pytest.mark.parametrize("kind", ["epoch", "iter"])
def test_mlflow_subclass_equals_shipped_and_calls_mmcv_api(kind: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """MlflowLoggerHook: the subclass logs the metrics the shipped hook logs, at the same steps; mmcv's calls."""
    calls: list[Any] = []
    mlflow, pytorch = _fake_mlflow(calls)
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    monkeypatch.setitem(sys.modules, "mlflow.pytorch", pytorch)
    kw: dict[str, Any] = {"exp_name": "exp", "tags": {"t": "1"}, "params": {"lr": 0.1}, "interval": 3,
                          "by_epoch": kind == "epoch"}
    train(kind, tmp_path / "a", log=False, hooks=((api.MlflowLoggerHook(log_model=False, **kw), "VERY_LOW"),))
    shipped, calls[:] = list(calls), []
    sub = calling_super(api.MlflowLoggerHook, "log")(**kw)
    assert sub.mlflow is None  # imported when the run starts
    train(kind, tmp_path / "b", log=False, hooks=((sub, "VERY_LOW"),))
    metrics = _train_only(calls, "log_metrics")
    assert metrics and metrics == _train_only(shipped, "log_metrics")
    if kind == "epoch":
        assert [c for c in calls if c[0] == "log_metrics"] == [c for c in shipped if c[0] == "log_metrics"]
    assert calls[:3] == [("set_experiment", "exp"), ("set_tags", {"t": "1"}), ("log_params", {"lr": 0.1})]
    assert calls[-1] == ("log_model", "Net", "models")  # mmcv's default log_model=True


@pytest.mark.parametrize("kind", ["epoch", "iter"])
def test_wandb_subclass_equals_shipped_and_calls_mmcv_api(kind: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """WandbLoggerHook: the subclass logs what the shipped hook logs; init, metrics, artifact and finish."""
    calls: list[Any] = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(calls))
    kw: dict[str, Any] = {"init_kwargs": {"project": "p"}, "interval": 4, "by_epoch": kind == "epoch",
                          "define_metric_cfg": {"train/loss": "min"}}
    train(kind, tmp_path / "a", hooks=((api.WandbLoggerHook(**kw), "VERY_LOW"),))
    shipped, calls[:] = list(calls), []
    train(kind, tmp_path / "b", hooks=((calling_super(api.WandbLoggerHook, "after_run")(**kw), "VERY_LOW"),))
    logged = _train_only(calls, "log")
    assert logged and logged == _train_only(shipped, "log")
    assert calls[:2] == [("init", {"project": "p"}), ("define_metric", "train/loss", "min")]
    assert calls[-2][0] == "log_artifact" and any(f.endswith(".log.json") for f in calls[-2][1])
    assert calls[-1] == ("finish",)
    calls[:] = []
    train(kind, tmp_path / "c", log=False, hooks=((calling_super(api.WandbLoggerHook, "log")(
        with_step=False, log_artifact=False, interval=6, by_epoch=kind == "epoch"), "VERY_LOW"),))
    steps = [c for c in calls if c[0] == "log" and c[2] is None]
    assert steps and all(c[1]["global_step"] > 0 for c in steps)


@pytest.mark.parametrize(("cls", "module", "hint"), [
    (api.MlflowLoggerHook, "mlflow", "pip install mlflow"),
    (api.WandbLoggerHook, "wandb", "pip install wandb"),
    (api.TensorboardLoggerHook, "torch.utils.tensorboard", "pip install tensorboard"),
])
@pytest.mark.parametrize("subclassed", [False, True])
def test_missing_logger_package_names_the_install_when_the_run_starts(
        cls: type, module: str, hint: str, subclassed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Making the hook needs nothing; running it without its package raises ImportError with the pip line."""
    monkeypatch.setitem(sys.modules, module, None)
    hook = (calling_super(cls, "log") if subclassed else cls)(interval=2)
    with pytest.raises(ImportError, match=hint):
        train("epoch", tmp_path, log=False, hooks=((hook, "VERY_LOW"),))


# ---------------------------------------------------------------------- profiler, helpers


@pytest.mark.parametrize("subclassed", [False, True])
def test_profiler_hook_profiles_the_first_iterations(subclassed: bool, tmp_path: Path) -> None:
    """ProfilerHook(by_epoch=False, profile_iters=3): the trace handler runs once, the Chrome trace is written."""
    ready: list[Any] = []
    trace = tmp_path / "trace.json"
    cls = calling_super(api.ProfilerHook, "after_train_iter") if subclassed else api.ProfilerHook
    hook = cls(by_epoch=False, profile_iters=3, on_trace_ready=ready.append, json_trace_path=str(trace))
    plain = train("iter", tmp_path / "plain", log=False)
    run = train("iter", tmp_path / "wd", log=False, hooks=((hook, "NORMAL"),))
    assert len(ready) == 1 and trace.is_file() and "traceEvents" in trace.read_text()
    assert_same_weights(plain.weights, run.weights)


def test_profiler_config_names_a_profiler_subclass(tmp_path: Path) -> None:
    """``register_profiler_hook(dict(...))`` builds ``ProfilerHook`` (or the registered ``type``) as mmcv."""
    stopped: list[int] = []

    @api.HOOKS.register_module(force=True)
    class StopNoteProfilerHook(api.ProfilerHook):
        def after_train_epoch(self, runner: Any) -> None:
            was = self.profiler
            super().after_train_epoch(runner)
            if was is not None and self.profiler is None:
                stopped.append(runner.epoch)

    run = train("epoch", tmp_path / "a", log=False, setup=lambda r: r.register_profiler_hook(
        {"type": "StopNoteProfilerHook", "profile_iters": 2}))
    assert stopped == [1]
    assert [type(h).__name__ for h in run.runner.hooks if isinstance(h, api.ProfilerHook)] == ["StopNoteProfilerHook"]
    run = train("epoch", tmp_path / "b", log=False, setup=lambda r: r.register_profiler_hook({"profile_iters": 1}))
    assert any(getattr(h, "name", "") == "ProfilerHook" for h in run.runner.hooks)


def test_class_path_priority_without_a_runner() -> None:
    """A subclass given to ``fsm_trainer.run`` directly (no register_hook) runs at mmcv's priority for its class."""
    from fsm_trainer import compile_workflow
    from fsm_trainer.context import RunContext

    ctx = RunContext(compile_workflow([("train", 1)], max_epochs=1), [[0]])
    made = calling_super(api.TextLoggerHook, "log")().to_fsm(ctx)
    assert made.priority == 90 and made.name == "MyTextLoggerHook" and ctx.loggers == ["MyTextLoggerHook"]
    assert calling_super(api.StepLrUpdaterHook, "get_lr")(step=1).to_fsm(ctx).priority == 10


def test_lr_updater_helpers_equal_mmcv() -> None:
    """annealing_cos, annealing_linear and format_param give mmcv 1.7.2's values (recorded there)."""
    assert api.annealing_cos(1.0, 0.1, 0.3, 0.8) == 0.6716026908252903
    assert api.annealing_cos(0.02, 0.0, 0.7) == 0.0041221474770752695
    assert api.annealing_linear(0.9, 0.45, 0.35) == 0.7425
    params = [torch.nn.Parameter(torch.ones(1)) for _ in range(2)]
    opt = torch.optim.SGD([{"params": [params[0]]}, {"params": [params[1]]}], lr=0.1)
    assert api.format_param("SGD", opt, 0.5) == [0.5, 0.5]
    assert api.format_param("SGD", opt, [1, 2]) == [1, 2]
    assert api.format_param("SGD", opt, {"SGD": [3, 4]}) == [3, 4]
    with pytest.raises(ValueError, match="expected 2 values"):
        api.format_param("SGD", opt, [1])
    with pytest.raises(KeyError, match="SGD"):
        api.format_param("SGD", opt, {"Adam": [1, 2]})


def test_new_classes_are_registered_by_name() -> None:
    """mmcv's registry names find the classes; LoggerHook is a base class (mmcv does not register it)."""
    for name in ("MlflowLoggerHook", "WandbLoggerHook", "ProfilerHook", "TextLoggerHook", "EMAHook"):
        assert api.HOOKS.get(name) is getattr(api, name)
    assert api.HOOKS.get("LoggerHook") is None
    assert issubclass(api.TextLoggerHook, api.LoggerHook) and issubclass(api.WandbLoggerHook, api.LoggerHook)
