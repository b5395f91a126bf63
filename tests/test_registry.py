"""Registries: names, import paths and user registrations resolve once, with path-named errors."""

from __future__ import annotations

import pytest

from fsm_trainer import Hook, TrainState, compile_workflow
from fsm_trainer.config import from_dict
from fsm_trainer.config.build import build
from fsm_trainer.context import RunContext
from fsm_trainer.hook import compose_hooks
from fsm_trainer.registry import HOOKS, MODELS, Registry, RegistryError
from fsm_trainer.runner import build_hooks

BASE = {
    "model": {"type": "DigitsNet", "hidden": 8},
    "optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9},
    "data": {"samples_per_gpu": 256, "train": {"type": "DigitsDataset"}},
    "runner": {"type": "EpochBasedRunner", "max_epochs": 1},
}


def test_register_build_and_kwargs_check():
    """A registered class builds from dict(type=...); unknown and missing arguments are named."""
    reg = Registry("thing")

    @reg.register()
    class Box:
        def __init__(self, size, colour="red"):
            self.size, self.colour = size, colour

    assert reg.build({"type": "Box", "size": 2}).size == 2
    assert reg.build({"type": "Box"}, default_args={"size": 3}).size == 3
    with pytest.raises(RegistryError, match=r"thing.color: unknown key for Box; did you mean 'colour'"):
        reg.build({"type": "Box", "size": 1, "color": "b"})
    with pytest.raises(RegistryError, match=r"thing.size: required key missing"):
        reg.build({"type": "Box"})
    with pytest.raises(KeyError, match="already registered"):
        reg.register("Box", obj=Box)


def test_import_path_and_unknown_type():
    """``pkg.module:Name`` resolves at build time; a near-miss name gets a suggestion."""
    reg = Registry("thing")
    od = reg.build({"type": "collections:OrderedDict"})
    assert type(od).__name__ == "OrderedDict"
    with pytest.raises(RegistryError, match=r"model\.type: cannot import module 'no_such_pkg_x\.mod'"):
        reg.get("no_such_pkg_x.mod:Thing", "model.type")
    with pytest.raises(RegistryError, match="has no attribute 'OrderedDcit'; did you mean 'OrderedDict'"):
        reg.get("collections:OrderedDcit")


def test_user_hook_from_config_runs_in_mmcv_order(tmp_path):
    """A user-registered hook used in custom_hooks lands by its priority, after defaults of equal priority."""
    calls = []

    def spy_hook(tag="x", priority="NORMAL"):
        return Hook(f"Spy{tag}", priority, {"after_train_iter": lambda s: (calls.append(tag), s)[1]})

    HOOKS.register("SpyHookForTest", force=True, obj=spy_hook)
    cfg = from_dict({**BASE, "checkpoint_config": {"interval": 1},
                     "log_config": {"interval": 5, "hooks": [{"type": "TextLoggerHook"}]},
                     "lr_config": {"policy": "step", "step": [1]},
                     "custom_hooks": [{"type": "SpyHookForTest", "tag": "a"},
                                      {"type": "SpyHookForTest", "tag": "b", "priority": "HIGHEST"}]})
    built = build(cfg, work_dir=tmp_path)
    ctx = RunContext(built.table, built.data_loaders, built.model, built.optimizer, tmp_path)
    composed = compose_hooks(build_hooks(built.hooks, ctx), built.table)
    names = [h.name for h in composed.order["after_train_iter"]]
    assert names == ["LogVarsCollector", "Spyb", "OptimizerHook", "Spya", "IterTimerHook", "TextLoggerHook",
                     "CheckpointHook.writer"]
    assert calls == []
    assert composed.order["before_run"][0].name == "StepLrUpdaterHook"


def test_user_model_by_import_path(tmp_path, monkeypatch):
    """A model given as 'module:Name' from the user's own package builds and trains."""
    pkg = tmp_path / "my_pkg_for_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(
        "from fsm_trainer.examples.digits import DigitsNet\n"
        "class Net(DigitsNet):\n    def __init__(self, width=16):\n        super().__init__(width)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = from_dict({**BASE, "model": {"type": "my_pkg_for_test.models:Net", "width": 4}})
    built = build(cfg)
    assert type(built.model).__name__ == "Net"
    assert built.model.net[0].out_features == 4
    from fsm_trainer.runner import run

    final = run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), **built.run_kwargs())
    assert final.epoch == 1
    assert "DigitsNet" in MODELS
