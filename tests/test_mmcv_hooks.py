"""mmcv-style code on ``fsm_trainer.mmcv``: the seed example, downstream class hooks, configs, errors, resume."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.mmcv import (
    HOOKS,
    RUNNERS,
    EpochBasedRunner,
    EvalHook,
    Hook,
    IterBasedRunner,
    LrUpdaterHook,
    Registry,
    RunnerAttributeError,
    build_from_cfg,
    build_optimizer,
    build_runner,
)

ROOT = Path(__file__).resolve().parent.parent


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.num_classes = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    def train_step(self, data: Any, optimizer: Any, **kwargs: Any) -> dict[str, Any]:
        x, y = data
        loss = torch.nn.functional.cross_entropy(self(x), y)
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": len(y)}

    def val_step(self, data: Any, optimizer: Any = None, **kwargs: Any) -> dict[str, Any]:
        return self.train_step(data, optimizer)


class ToyDataset(TensorDataset):
    CLASSES = ("a", "b", "c")

    def evaluate(self, results: list[Any], logger: Any = None, **kwargs: Any) -> dict[str, float]:
        preds = torch.stack(results).argmax(1)
        return {"accuracy": float((preds == self.tensors[1]).float().mean())}


def toy(n: int = 24) -> ToyDataset:
    g = torch.Generator().manual_seed(0)
    return ToyDataset(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


def build_dataloader(ds: Any, samples_per_gpu: int, workers_per_gpu: int, **kwargs: Any) -> DataLoader:
    return DataLoader(ds, batch_size=samples_per_gpu, num_workers=workers_per_gpu, **kwargs)


def seed_example(cfg: Any, dataset: list[Any], logger: logging.Logger) -> Any:
    """The seed document's example, as written there (with real objects behind its names)."""
    # (1)
    model = Net()
    optimizer = build_optimizer(model, cfg.optimizer)
    data_loaders = [
        build_dataloader(
            ds,
            cfg.data.samples_per_gpu,
            cfg.data.workers_per_gpu,
        ) for ds in dataset
    ]
    # (2)
    runner = build_runner(
        cfg.runner,
        default_args=dict(
            model=model,
            batch_processor=None,
            optimizer=optimizer,
            logger=logger,
            work_dir=cfg.work_dir))
    # (3)
    optimizer_config = cfg.optimizer_config
    runner.register_training_hooks(
        cfg.lr_config,
        optimizer_config,
        cfg.checkpoint_config,
        cfg.log_config)
    if cfg.get('custom_hooks', None):
        for hook_cfg in cfg.custom_hooks:
            hook_cfg = hook_cfg.copy()
            priority = hook_cfg.pop('priority', 'NORMAL')
            hook = build_from_cfg(hook_cfg, HOOKS)
            runner.register_hook(hook, priority=priority)
    # (4)
    runner.run(data_loaders, cfg.workflow)
    return runner


class Cfg(dict):
    __getattr__ = dict.__getitem__


SEEN: list[Any] = []


@HOOKS.register_module(force=True)
class SeedProbeHook(Hook):
    def __init__(self, tag: str = "x") -> None:
        self.tag = tag

    def after_train_epoch(self, runner: Any) -> None:
        SEEN.append((self.tag, runner.epoch, runner.iter, runner.max_epochs))

    def after_train_iter(self, runner: Any) -> None:
        if self.is_last_iter(runner):
            SEEN.append((self.tag, "last", runner.iter))


@pytest.mark.parametrize("kind", ["EpochBasedRunner", "IterBasedRunner"])
def test_seed_example_runs(kind: str, tmp_path: Path) -> None:
    """The seed example (build_runner, register_training_hooks, custom_hooks, run) trains, epoch- and iter-based."""
    SEEN.clear()
    epoch = kind == "EpochBasedRunner"
    cfg = Cfg(
        optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=0.0001),
        data=Cfg(samples_per_gpu=6, workers_per_gpu=0),
        runner=dict(type=kind, max_epochs=4) if epoch else dict(type=kind, max_iters=10),
        lr_config=dict(policy="step", step=[2] if epoch else [6]),
        optimizer_config=dict(grad_clip=None),
        checkpoint_config=dict(interval=2),
        log_config=dict(interval=2, hooks=[dict(type="TextLoggerHook")]),
        custom_hooks=[dict(type="SeedProbeHook", tag=kind, priority="LOW")],
        workflow=[("train", 3), ("val", 1)] if epoch else [("train", 5), ("val", 2)],
        work_dir=str(tmp_path),
    )
    runner = seed_example(cfg, [toy(), toy(12)], logging.getLogger("seed"))
    if epoch:
        assert (runner.epoch, runner.iter) == (4, 16)
        assert [s[1] for s in SEEN if s[1] != "last"] == [0, 1, 2, 3]
        assert sorted(p.name for p in tmp_path.glob("epoch_*")) == ["epoch_2", "epoch_4"]
        assert runner.current_lr() == [pytest.approx(0.01)]
    else:
        assert runner.iter == 10
        assert [(kind, "last", 9)] == SEEN
        assert sorted(p.name for p in tmp_path.glob("iter_*")) == ["iter_10", "iter_2", "iter_4", "iter_6", "iter_8"]
    logs = list(tmp_path.glob("*.log.json"))
    assert logs and "loss" in logs[0].read_text()


# ---------------------------------------------------------------------- downstream-style hooks

HOOKS_MODULE = '''
import math
import torch
from fsm_trainer.mmcv import HOOKS, Hook, LrUpdaterHook

RECORD = []


@HOOKS.register_module()
class NumClassCheckHookT(Hook):
    def _check(self, runner):
        dataset = runner.data_loader.dataset
        n = int(dataset.y.max()) + 1
        out = runner.model.net[-1].out_features
        assert n <= out, f"{n} classes in the dataset, {out} outputs"
        RECORD.append(("classes", runner.mode, n))

    def before_train_epoch(self, runner):
        self._check(runner)

    def before_val_epoch(self, runner):
        self._check(runner)


@HOOKS.register_module()
class CheckInvalidLossHookT(Hook):
    def __init__(self, interval=1):
        self.interval = interval

    def after_train_iter(self, runner):
        if self.every_n_iters(runner, self.interval):
            assert torch.isfinite(runner.outputs["loss"]), runner.logger.info("loss become infinite or NaN!")


@HOOKS.register_module()
class SetEpochInfoHookT(Hook):
    def before_train_epoch(self, runner):
        runner.model.epoch = runner.epoch
        RECORD.append(("set_epoch", runner.epoch))


@HOOKS.register_module()
class WriteOutputHookT(Hook):
    def after_train_iter(self, runner):
        runner.log_buffer.output["custom_metric"] = float(runner.iter)


@HOOKS.register_module()
class SaveLastHookT(Hook):
    def after_train_epoch(self, runner):
        if self.is_last_epoch(runner):
            path = runner.save_checkpoint(runner.work_dir, filename_tmpl="final_{}.pth", create_symlink=False)
            RECORD.append(("saved", str(path)))
'''

CONFIG = '''
_base_ = ['{base}']
custom_imports = dict(imports=['{module}'])
custom_hooks = [
    dict(type='NumClassCheckHookT'),
    dict(type='CheckInvalidLossHookT', interval=2, priority='VERY_LOW'),
    dict(type='SetEpochInfoHookT'),
    dict(type='WriteOutputHookT', priority='HIGH'),
    dict(type='SaveLastHookT'),
]
'''


def test_class_hooks_in_a_config_run_by_fsm_trainer_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Class hooks registered with @HOOKS.register_module() and named in custom_hooks run under `fsm-trainer train`."""
    from fsm_trainer.cli import main

    (tmp_path / "mmcv_style_hooks_t.py").write_text(HOOKS_MODULE)
    cfg = tmp_path / "cfg.py"
    cfg.write_text(CONFIG.format(base=ROOT / "configs" / "digits_mlp.py", module="mmcv_style_hooks_t"))
    monkeypatch.syspath_prepend(str(tmp_path))
    wd = tmp_path / "wd"
    code = main(["train", str(cfg), "--work-dir", str(wd), "--progress", "off", "--cfg-options",
                 "runner.max_epochs=2", "data.samples_per_gpu=256", "log_config.interval=2", "evaluation.interval=1"])
    assert code == 0
    import mmcv_style_hooks_t as mod  # type: ignore[import-not-found]

    rec = mod.RECORD
    assert ("set_epoch", 0) in rec and ("set_epoch", 1) in rec
    assert {r[1] for r in rec if r[0] == "classes"} == {"train", "val"}
    saved = [r[1] for r in rec if r[0] == "saved"]
    assert [Path(p).name for p in saved] == ["final_2"]
    assert (Path(saved[0]) / "manifest.json").exists()
    lines = [json.loads(x) for x in next(wd.glob("*.log.json")).read_text().splitlines()[1:]]
    assert any("custom_metric" in x for x in lines if x.get("mode") == "train")


def test_writes_to_counters_are_refused_with_the_hook_name() -> None:
    """`runner._epoch = ...` inside a hook raises, naming the hook and the attribute; nothing is silently ignored."""

    class Skipper(Hook):
        def after_train_iter(self, runner: Any) -> None:
            runner._epoch = 5

    table = compile_workflow([("train", 1)], max_epochs=1)
    with pytest.raises(RunnerAttributeError, match=r"'Skipper' assigned runner\._epoch"):
        run(TrainState(), table, data_loaders=[[0, 1]], train_step=lambda b: {}, val_step=lambda b: {},
            hooks=[Skipper()])


def test_runner_outputs_replaced_and_extra_attributes_shared() -> None:
    """Assigning runner.outputs replaces the outputs for later hooks; new attributes are shared by the hooks."""
    seen: list[Any] = []

    class First(Hook):
        def after_train_iter(self, runner: Any) -> None:
            runner.outputs = {**runner.outputs, "extra": runner.iter}
            runner.note = "from First"

    class Second(Hook):
        def after_train_iter(self, runner: Any) -> None:
            seen.append((runner.outputs["extra"], runner.note))

    first = First()
    first.priority = 40  # type: ignore[attr-defined]
    table = compile_workflow([("train", 1)], max_epochs=1)
    run(TrainState(), table, data_loaders=[[0, 1]], train_step=lambda b: {"log_vars": {}}, val_step=lambda b: {},
        hooks=[first, Second()])
    assert seen == [(0, "from First"), (1, "from First")]


def test_class_hook_pays_only_at_overridden_points() -> None:
    """Only overridden points (and the specific points of an overridden generic one) become state functions."""
    from fsm_trainer.context import RunContext
    from fsm_trainer.mmcv.hook import class_hook

    class OnlyIter(Hook):
        def after_iter(self, runner: Any) -> None:
            pass

    class Epochs(Hook):
        def before_epoch(self, runner: Any) -> None:
            pass

    epoch_ctx = RunContext(compile_workflow([("train", 1), ("val", 1)], max_epochs=1), [[0], [0]])
    iter_ctx = RunContext(compile_workflow([("train", 1), ("val", 1)], max_iters=2), [[0], [0]])
    assert set(class_hook(OnlyIter(), epoch_ctx).on) == {"after_train_iter", "after_val_iter"}
    assert set(class_hook(Epochs(), epoch_ctx).on) == {"before_train_epoch", "before_val_epoch"}
    assert set(class_hook(Epochs(), iter_ctx).on) == {"before_epoch"}
    assert Epochs().get_triggered_stages() == ["before_train_epoch", "before_val_epoch"]


def _decorated(fn: Any) -> Any:
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        return fn(*args)

    return wrapper


class _ReadsAttr(Hook):
    def after_train_iter(self, runner: Any) -> None:
        runner.log_buffer.output["x"] = 1


class _ReadsByName(Hook):
    def after_train_iter(self, runner: Any) -> None:
        getattr(runner, "log_buffer").clear()  # noqa: B009


class _ReadsInNestedCode(Hook):
    def after_train_iter(self, runner: Any) -> None:
        print([v for v in runner.log_buffer.val_history])


class _ReadsInHelpers(Hook):
    @staticmethod
    def _tags(runner: Any) -> Any:
        return runner.log_buffer.output

    @_decorated
    def after_train_iter(self, runner: Any) -> None:
        self._tags(runner)


class _Subclass(_ReadsAttr):
    def before_run(self, runner: Any) -> None:
        pass


class _ReadsNothing(Hook):
    """Counts iterations."""

    n = 0

    @property
    def count(self) -> int:
        return self.n

    def after_train_iter(self, runner: Any) -> None:
        self.n += runner.inner_iter


_SOURCELESS: dict[str, Any] = {"Hook": Hook}
exec("class Sourceless(Hook):\n    def after_iter(self, runner):\n        runner.log_buffer.update({})\n",
     _SOURCELESS)


@pytest.mark.parametrize(("hook", "reads"), [
    (_ReadsAttr, True), (_ReadsByName, True), (_ReadsInNestedCode, True), (_ReadsInHelpers, True), (_Subclass, True),
    (_SOURCELESS["Sourceless"], True), (_ReadsNothing, False), (Hook, False),
])
def test_the_log_buffer_is_fed_for_class_hooks_whose_code_names_it(hook: type, reads: bool) -> None:
    """A class hook naming ``log_buffer`` (attribute, string, nested code, helper, base class,
    no source file) makes the run feed the buffer; other hooks cost nothing there."""
    from fsm_trainer.context import RunContext
    from fsm_trainer.mmcv.hook import class_hook

    ctx = RunContext(compile_workflow([("train", 1)], max_epochs=1), [[0]])
    class_hook(hook(), ctx)
    assert ctx.uses_log_buffer == reads


def test_registry_mmcv_semantics() -> None:
    """register_module as decorator/call, duplicate names refused, get() of an unknown name is None."""
    reg = Registry("thing")

    @reg.register_module()
    class A:
        pass

    reg.register_module(name=["B", "C"], module=A)
    assert reg.get("A") is A and reg.get("C") is A and reg.get("nope") is None
    with pytest.raises(KeyError):
        reg.register_module(module=A)
    assert isinstance(build_from_cfg(dict(type="B"), reg), A)
    with pytest.raises(KeyError, match="not in the thing registry"):
        build_from_cfg(dict(type="Z"), reg)
    assert RUNNERS.get("EpochBasedRunner") is EpochBasedRunner
    assert HOOKS.get("CheckpointHook").__module__ == "fsm_trainer.mmcv.hooks"


def test_shared_registry_with_config_path() -> None:
    """A class registered in fsm_trainer.mmcv.HOOKS is in fsm_trainer.registry.HOOKS, which configs read."""
    from fsm_trainer.registry import HOOKS as FSM_HOOKS

    assert FSM_HOOKS.get("SeedProbeHook") is SeedProbeHook


# ---------------------------------------------------------------------- LR subclass, eval subclass, resume


class Counter(Hook):
    """Keeps a tensor count (state_dict) and a JSON count in runner.meta."""

    def __init__(self) -> None:
        self.count = torch.zeros(())

    def after_train_iter(self, runner: Any) -> None:
        self.count += 1
        runner.meta.setdefault("counter", {"n": 0})
        runner.meta["counter"]["n"] += 1

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count.clone()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.count = d["count"].clone()


class Halve(LrUpdaterHook):
    def get_lr(self, runner: Any, base_lr: float) -> float:
        return base_lr * 0.5 ** runner.epoch


class Acc(EvalHook):
    def evaluate(self, runner: Any, results: list[Any]) -> float:
        acc = float((torch.stack(results).argmax(1) == self.dataloader.dataset.tensors[1]).float().mean())
        runner.log_buffer.output["acc"] = acc
        runner.log_buffer.ready = True
        return acc


def _runner(wd: Path, max_epochs: int = 4) -> tuple[EpochBasedRunner, Counter]:
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    runner = EpochBasedRunner(model, optimizer=opt, work_dir=str(wd), logger=logging.getLogger("t"),
                              max_epochs=max_epochs)
    runner.register_training_hooks(None, dict(grad_clip=None), dict(interval=1))
    runner.register_hook(Halve(), priority="VERY_HIGH")
    counter = Counter()
    runner.register_hook(counter)
    runner.register_hook(Acc(DataLoader(toy(), batch_size=12), save_best="acc"), priority="LOW")
    return runner, counter


def test_resume_of_class_hooks_is_exact(tmp_path: Path) -> None:
    """runner.resume() then run(): weights, a hook's state_dict and runner.meta equal an uninterrupted run's."""
    loaders = [DataLoader(toy(), batch_size=6, shuffle=True, generator=None)]
    torch.manual_seed(1)
    full, c_full = _runner(tmp_path / "a")
    full.run(loaders, [("train", 1)])
    torch.manual_seed(1)
    first, _ = _runner(tmp_path / "b", max_epochs=4)
    first._max_epochs = 2
    first.run(loaders, [("train", 1)])
    second, c_second = _runner(tmp_path / "c")
    second.resume(str(tmp_path / "b" / "epoch_2.pth"))
    assert (second.epoch, second.iter) == (2, 8)
    second.run(loaders, [("train", 1)])
    assert float(c_second.count) == float(c_full.count) == 16
    assert second.meta["counter"] == full.meta["counter"] == {"n": 16}
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k]), k
    assert second.current_lr() == full.current_lr() == [pytest.approx(0.1 * 0.5 ** 3)]
    assert Path(full.meta["hook_msgs"]["best_ckpt"]).name.startswith("best_acc_epoch_")


def test_iter_runner_data_loader_is_iter_loader_like(tmp_path: Path) -> None:
    """In an iter-based run runner.data_loader has mmcv's IterLoader epoch and length."""
    seen: list[Any] = []

    class Probe(Hook):
        def after_train_iter(self, runner: Any) -> None:
            seen.append((runner.data_loader.epoch, len(runner.data_loader), runner.epoch))

    model = Net()
    runner = IterBasedRunner(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), max_iters=5,
                             logger=logging.getLogger("t"))
    runner.register_hook(Probe())
    runner.run([DataLoader(toy(8), batch_size=4)], [("train", 1)])
    # as mmcv: runner.epoch is the pass count read before the batch was fetched, the loader's is after
    assert [s[2] for s in seen] == [0, 0, 0, 1, 1]
    assert [s[0] for s in seen] == [0, 0, 1, 1, 2]
    assert all(s[1] == 2 for s in seen)
    assert math.isclose(runner.current_lr()[0], 0.1)


@pytest.mark.parametrize("by", ["epoch", "iter"])
def test_resume_from_an_mmcv_pth_continues_the_run(by: str, tmp_path: Path) -> None:
    """A .pth written the way mmcv 1.x's runners write them (NumPy scalars in meta) resumes: the
    weights after the remaining epochs/iterations equal those of the run that never stopped."""
    import numpy as np

    loaders = [DataLoader(toy(8), batch_size=4)]

    def make(stop: int | None) -> Any:
        torch.manual_seed(0)
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        kind = EpochBasedRunner if by == "epoch" else IterBasedRunner
        limit = {"max_epochs": 4} if by == "epoch" else {"max_iters": 8}
        runner = kind(model, optimizer=opt, work_dir=str(tmp_path / f"w{stop}"), logger=logging.getLogger("t"),
                      **limit)
        runner.register_training_hooks(dict(policy="step", step=[2 if by == "epoch" else 4]),
                                       dict(grad_clip=None))
        if stop is not None:
            runner.__setattr__("_max_epochs" if by == "epoch" else "_max_iters", stop)
        return runner

    full = make(None)
    full.run(loaders, [("train", 1)])
    first = make(2 if by == "epoch" else 4)
    first.run(loaders, [("train", 1)])
    pth = tmp_path / "epoch_2.pth"
    # mmcv's IterBasedRunner saves at after_train_iter, before its counters move: epoch + 1, iter + 1
    # (first.iter already counts that iteration); the EpochBasedRunner saves the epochs completed.
    epoch = first.epoch if by == "epoch" else first.epoch + 1
    torch.save({"meta": {"epoch": epoch, "iter": first.iter, "mmcv_version": "1.7.2",
                         "hook_msgs": {"best_score": np.float64(0.5), "last_ckpt": "x/epoch_2.pth"}},
                "state_dict": first.model.state_dict(), "optimizer": first.optimizer.state_dict()}, pth)
    second = make(None)
    second.resume(str(pth))
    assert (second.epoch, second.iter) == (epoch, first.iter) == (2, 4)
    assert second.meta["hook_msgs"]["best_score"] == 0.5 and type(second.meta["hook_msgs"]["best_score"]) is float
    second.run(loaders, [("train", 1)])
    assert (second.epoch, second.iter) == (full.epoch, full.iter)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k]), k
    assert second.current_lr() == full.current_lr()
