"""fsm_trainer.mmcv.optimizer: mmcv 1.7.2's optimizer registries, DefaultOptimizerConstructor and build_optimizer.

The param groups are compared with mmcv 1.7.2's, recorded (as literals below) by building the
same configs over the same model with ``mmcv.runner.build_optimizer``. A constructor registered
through ``OPTIMIZER_BUILDERS`` is used by ``fsm-trainer train`` (``main()`` in this process).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import fsm_trainer.registry as fsm_registry
from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.mmcv.optimizer import (
    OPTIMIZER_BUILDERS,
    OPTIMIZERS,
    DefaultOptimizerConstructor,
    OptimizerConstructorError,
    build_optimizer,
    build_optimizer_constructor,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "digits_mlp.py"


def make_model() -> nn.Module:
    """conv, BatchNorm, depthwise conv, GroupNorm, a bias-free conv, LayerNorm, Linear, a top-level
    parameter and a partly frozen Linear (the model the mmcv values were recorded on)."""
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 8, 3)
            self.bn = nn.BatchNorm2d(8)
            self.dw = nn.Conv2d(8, 8, 3, groups=8)
            self.gn = nn.GroupNorm(2, 8)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = Block()
            self.neck = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.LayerNorm(8))
            self.head = nn.Linear(8, 3)
            self.pos_embed = nn.Parameter(torch.zeros(1, 8))
            self.frozen = nn.Linear(2, 2)
            self.frozen.weight.requires_grad_(False)

    return Net()


ORDER = ["pos_embed", "backbone.conv.weight", "backbone.conv.bias", "backbone.bn.weight", "backbone.bn.bias",
         "backbone.dw.weight", "backbone.dw.bias", "backbone.gn.weight", "backbone.gn.bias", "neck.0.weight",
         "neck.1.weight", "neck.1.bias", "head.weight", "head.bias", "frozen.weight", "frozen.bias"]
"""mmcv 1.7.2's order of the groups (one parameter each) for make_model()."""

CFGS: dict[str, dict[str, Any]] = {
    "rules": dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-4,
                  paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.5, norm_decay_mult=0.0,
                                     dwconv_decay_mult=0.25)),
    "custom_keys": dict(type="AdamW", lr=0.01, weight_decay=0.05, paramwise_cfg=dict(
        bias_lr_mult=2.0, norm_decay_mult=0.0,
        custom_keys={"backbone": dict(lr_mult=0.1), "backbone.bn": dict(lr_mult=0.5, decay_mult=0.0),
                     "pos_embed": dict(decay_mult=0.0), "head": dict(lr_mult=3.0, decay_mult=2.0),
                     "neck.0": dict(lr_mult=0.2), "neck.1": dict(lr_mult=0.3)})),
    "no_weight_decay": dict(type="SGD", lr=0.1, paramwise_cfg=dict(bias_lr_mult=2.0,
                                                                   custom_keys={".pos": dict(lr_mult=0.0)})),
}

# mmcv 1.7.2's (lr, weight_decay) of each param group, from mmcv.runner.build_optimizer(make_model(), CFGS[k]).
MMCV_GROUPS: dict[str, list[tuple[float, float]]] = {
    "rules": [(0.1, 0.0001), (0.1, 0.0001), (0.2, 5e-05), (0.1, 0.0), (0.1, 0.0), (0.1, 2.5e-05), (0.2, 2.5e-05),
              (0.1, 0.0), (0.1, 0.0), (0.1, 0.0001), (0.1, 0.0), (0.1, 0.0), (0.1, 0.0001), (0.2, 5e-05),
              (0.1, 0.0001), (0.2, 5e-05)],
    "custom_keys": [(0.01, 0.0), (0.001, 0.05), (0.001, 0.05), (0.005, 0.0), (0.005, 0.0), (0.001, 0.05),
                    (0.001, 0.05), (0.001, 0.05), (0.001, 0.05), (0.002, 0.05), (0.003, 0.05), (0.003, 0.05),
                    (0.03, 0.1), (0.03, 0.1), (0.01, 0.05), (0.02, 0.05)],
    "no_weight_decay": [(0.0, 0), (0.1, 0), (0.2, 0), (0.1, 0), (0.1, 0), (0.1, 0), (0.2, 0), (0.1, 0), (0.1, 0),
                        (0.1, 0), (0.1, 0), (0.1, 0), (0.1, 0), (0.2, 0), (0.1, 0), (0.2, 0)],
}


def groups(opt: torch.optim.Optimizer) -> list[tuple[float, float]]:
    return [(g["lr"], g["weight_decay"]) for g in opt.param_groups]


def group_names(model: nn.Module, opt: torch.optim.Optimizer) -> list[str]:
    names: dict[int, str] = {}
    for n, p in model.named_parameters():
        names.setdefault(id(p), n)
    return [names[id(p)] for g in opt.param_groups for p in g["params"]]


@pytest.mark.parametrize("name", sorted(CFGS))
def test_param_groups_equal_mmcv(name: str) -> None:
    """Each rule (bias/norm/depthwise multipliers, custom_keys by longest match) gives mmcv's groups, in mmcv's order."""
    model = make_model()
    cfg = copy.deepcopy(CFGS[name])
    opt = build_optimizer(model, cfg)
    assert cfg == CFGS[name]  # the config is not modified
    assert groups(opt) == MMCV_GROUPS[name]
    assert group_names(model, opt) == ORDER
    assert type(opt).__name__ == CFGS[name]["type"]


def test_without_paramwise_cfg_one_group_of_every_parameter() -> None:
    model = make_model()
    opt = build_optimizer(model, dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-4))
    assert len(opt.param_groups) == 1
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in model.parameters()]
    assert groups(opt) == [(0.1, 1e-4)]


def test_bypass_duplicate_skips_a_tied_weight_like_mmcv() -> None:
    """A weight shared by two modules is kept once, with a warning naming it (mmcv: 17 groups, the last one head.bias's
    twin tied.bias)."""
    model = make_model()
    model.tied = nn.Linear(8, 3)
    model.tied.weight = model.head.weight
    cfg = dict(type="SGD", lr=0.1, weight_decay=1e-4, paramwise_cfg=dict(bypass_duplicate=True, bias_lr_mult=2.0))
    with pytest.warns(UserWarning, match=r"tied\.weight .*bypass_duplicate=True") as record:
        opt = build_optimizer(model, cfg)
    assert len(record) == 1
    # mmcv 1.7.2's groups for this model and config:
    assert groups(opt) == [(0.1, 0.0001), (0.1, 0.0001), (0.2, 0.0001), (0.1, 0.0001), (0.1, 0.0001), (0.1, 0.0001),
                           (0.2, 0.0001), (0.1, 0.0001), (0.1, 0.0001), (0.1, 0.0001), (0.1, 0.0001), (0.1, 0.0001),
                           (0.1, 0.0001), (0.2, 0.0001), (0.1, 0.0001), (0.2, 0.0001), (0.2, 0.0001)]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    cfg["paramwise_cfg"]["bypass_duplicate"] = False
    with pytest.raises(ValueError, match="more than one parameter group"):  # torch refuses the duplicate
        build_optimizer(model, cfg)


def test_subclass_add_params_is_called_for_every_module_and_super_applies_the_rules() -> None:
    """An add_params override sees every module (mmcv's prefixes) and super().add_params adds the module's own
    parameters only; the groups equal those of the same subclass on mmcv 1.7.2."""
    seen: list[str] = []

    class Skip(DefaultOptimizerConstructor):
        def add_params(self, params: list[dict[str, Any]], module: nn.Module, prefix: str = "",
                       is_dcn_module: Any = None) -> None:
            seen.append(prefix)
            if prefix != self.paramwise_cfg["skip"]:
                super().add_params(params, module, prefix, is_dcn_module)

    model = make_model()
    ctor = Skip(dict(type="SGD", lr=0.1, weight_decay=1e-4),
                dict(skip="backbone", bias_lr_mult=2.0, custom_keys={"neck": dict(decay_mult=0.5)}))
    opt = ctor(model)
    # mmcv 1.7.2's prefixes and (name, lr, weight_decay) of the groups:
    assert seen == ["", "backbone", "neck", "neck.0", "neck.1", "head", "frozen"]
    assert [(n, *g) for n, g in zip(group_names(model, opt), groups(opt), strict=True)] == [
        ("pos_embed", 0.1, 0.0001), ("neck.0.weight", 0.1, 5e-05), ("neck.1.weight", 0.1, 5e-05),
        ("neck.1.bias", 0.1, 5e-05), ("head.weight", 0.1, 0.0001), ("head.bias", 0.2, 0.0001),
        ("frozen.weight", 0.1, 0.0001), ("frozen.bias", 0.2, 0.0001)]
    seen.clear()
    Skip(dict(type="SGD", lr=0.1), dict(skip="none"))(model)
    assert seen == ["", "backbone", "backbone.conv", "backbone.bn", "backbone.dw", "backbone.gn", "neck", "neck.0",
                    "neck.1", "head", "frozen"]


def test_add_params_with_a_prefix_matches_custom_keys_on_the_full_name() -> None:
    """add_params(params, submodule, prefix='backbone') names the parameters as mmcv: 'backbone.conv.weight'."""
    model = make_model()
    ctor = DefaultOptimizerConstructor(dict(type="SGD", lr=1.0), dict(custom_keys={"backbone.conv": dict(lr_mult=0.5)}))
    params: list[dict[str, Any]] = []
    ctor.add_params(params, model.backbone, prefix="backbone")
    # mmcv 1.7.2's: the custom key, else the bias rule (not for norm layers), else no lr of its own
    assert [g.get("lr") for g in params] == [0.5, 0.5, None, None, None, 1.0, None, None]
    assert [g["params"][0] for g in params] == list(model.backbone.parameters())
    params = []
    ctor.add_params(params, model.backbone)  # without the prefix, 'conv.weight' does not contain 'backbone.conv'
    assert [g.get("lr") for g in params] == [None, 1.0, None, None, None, 1.0, None, None]


def test_registered_constructor_through_build_optimizer() -> None:
    """build_optimizer pops constructor and paramwise_cfg, and calls Constructor(optimizer_cfg, paramwise_cfg)(model)."""
    import mmcv_custom_constructor as helper  # type: ignore[import-not-found]

    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = build_optimizer(model, dict(type="SGD", lr=0.1, weight_decay=1e-3, constructor="LayerDecayConstructorT",
                                      paramwise_cfg=dict(decay_rate=0.5)))
    assert helper.BUILT[-1] is opt
    assert groups(opt) == [(0.1, 1e-3), (0.1, 0.0), (0.05, 1e-3), (0.05, 0.0)]
    assert [id(g["params"][0]) for g in opt.param_groups] == [
        id(model[2].weight), id(model[2].bias), id(model[0].weight), id(model[0].bias)]


def test_registries_share_entries_with_fsm_trainer_registries() -> None:
    """OPTIMIZER_BUILDERS/OPTIMIZERS write to fsm_trainer.registry's (the config path's) registries, and read them."""

    @OPTIMIZER_BUILDERS.register_module(force=True)
    class SharedCtorT(DefaultOptimizerConstructor):
        pass

    assert fsm_registry.OPTIMIZER_CONSTRUCTORS.get("SharedCtorT") is SharedCtorT
    assert OPTIMIZER_BUILDERS.get("SharedCtorT") is SharedCtorT
    assert OPTIMIZER_BUILDERS.get("DefaultOptimizerConstructor") is DefaultOptimizerConstructor
    with pytest.raises(KeyError, match="already registered"):
        OPTIMIZER_BUILDERS.register_module(name="SharedCtorT", module=SharedCtorT)

    class MySGDT(torch.optim.SGD):
        pass

    fsm_registry.OPTIMIZERS.register("MySGDT", force=True, obj=MySGDT)
    assert OPTIMIZERS.get("MySGDT") is MySGDT
    assert OPTIMIZERS.get("AdamW") is torch.optim.AdamW and "SGD" in OPTIMIZERS
    opt = build_optimizer(nn.Linear(2, 2), dict(type="MySGDT", lr=0.5, paramwise_cfg=dict(bias_lr_mult=0.0)))
    assert type(opt) is MySGDT and groups(opt) == [(0.5, 0), (0.0, 0)]
    opt = build_optimizer(nn.Linear(2, 2), dict(type=torch.optim.Adam, lr=0.5))  # a class, as mmcv allows
    assert type(opt) is torch.optim.Adam


def test_constructor_attributes_and_wrapped_model() -> None:
    cfg = dict(type="SGD", lr=0.1, weight_decay=1e-4)
    ctor = build_optimizer_constructor(dict(type="DefaultOptimizerConstructor", optimizer_cfg=cfg))
    assert (ctor.base_lr, ctor.base_wd, ctor.paramwise_cfg, ctor.optimizer_cfg) == (0.1, 1e-4, {}, cfg)

    class Wrapper(nn.Module):  # DataParallel-like: the optimizer is over .module's parameters
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    inner = nn.Linear(2, 2)
    opt = DefaultOptimizerConstructor(cfg, dict(bias_decay_mult=0.0))(Wrapper(inner))
    assert group_names(inner, opt) == ["weight", "bias"] and groups(opt) == [(0.1, 1e-4), (0.1, 0.0)]


@pytest.mark.parametrize(("optimizer_cfg", "paramwise_cfg", "builtin", "match"), [
    ([("type", "SGD")], None, TypeError, "optimizer_cfg must be a dict"),
    (dict(type="SGD", lr=0.1), [1], TypeError, "paramwise_cfg must be a dict or None"),
    (dict(type="SGD", lr=0.1), dict(custom_keys=["a"]), TypeError, "paramwise_cfg.custom_keys must be a dict"),
    (dict(type="SGD", lr=0.1), dict(norm_decay_mult=0.0), ValueError, r"norm_decay_mult=0.0 needs .*weight_decay"),
    (dict(type="SGD", lr=0.1), dict(custom_keys={"a": dict(decay_mult=0.0)}), ValueError, "has decay_mult"),
    (dict(type="SGD", lr=0.1), dict(bias_lr_mul=2.0), ValueError, r"unknown key\(s\) 'bias_lr_mul'; allowed: "),
    (dict(type="SGD", lr=0.1), dict(custom_keys={"a": dict(lr_mul=2.0)}), ValueError, r"unknown field\(s\) 'lr_mul'"),
])
def test_bad_configs_are_refused_with_mmcv_exception_types(optimizer_cfg: Any, paramwise_cfg: Any, builtin: type,
                                                           match: str) -> None:
    """mmcv raises TypeError/ValueError for the first five; typos in paramwise_cfg are refused here too."""
    with pytest.raises(OptimizerConstructorError, match=match) as info:
        DefaultOptimizerConstructor(optimizer_cfg, paramwise_cfg)
    assert isinstance(info.value, builtin) and isinstance(info.value, FsmTrainerError)


def test_extra_paramwise_keys_belong_to_subclasses_and_lr_is_needed() -> None:
    class Extra(DefaultOptimizerConstructor):
        pass

    assert Extra(dict(type="SGD", lr=0.1), dict(decay_rate=0.9)).paramwise_cfg == dict(decay_rate=0.9)
    with pytest.raises(OptimizerConstructorError, match=r"needs optimizer_cfg\['lr'\]"):
        DefaultOptimizerConstructor(dict(type="SGD"), dict(bias_lr_mult=2.0))(nn.Linear(2, 2))
    with pytest.raises(KeyError, match="NoSuchCtor is not in the optimizer builder registry"):
        build_optimizer(nn.Linear(2, 2), dict(type="SGD", lr=0.1, constructor="NoSuchCtor"))
    with pytest.raises(KeyError, match="NoSuchOpt is not in the optimizer registry"):
        build_optimizer(nn.Linear(2, 2), dict(type="NoSuchOpt", lr=0.1))


# --------------------------------------------------------------------------- the config path


@pytest.fixture
def _restore_logger() -> Iterator[None]:
    logger = logging.getLogger("fsm_trainer")
    level, propagate = logger.level, logger.propagate
    yield
    for h in list(logger.handlers):
        logger.removeHandler(h)
    logger.setLevel(level)
    logger.propagate = propagate


def cli(*args: str) -> tuple[int, str]:
    """``fsm-trainer ARGS`` in this process: (exit code, stderr)."""
    from fsm_trainer.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue()


CONSTRUCTOR_CONFIG = """
_base_ = {base!r}
custom_imports = dict(imports=['mmcv_custom_constructor'])
optimizer = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4, constructor='LayerDecayConstructorT',
                 paramwise_cfg=dict(decay_rate=0.5))
"""


@pytest.mark.slow
@pytest.mark.usefixtures("_restore_logger")
def test_fsm_trainer_train_uses_a_constructor_registered_through_optimizer_builders(tmp_path: Path) -> None:
    """`fsm-trainer train` with optimizer.constructor naming a class registered by a custom_imports module with
    @OPTIMIZER_BUILDERS.register_module(): the run trains with the groups its add_params made."""
    import mmcv_custom_constructor as helper

    from fsm_trainer.checkpoint import load_checkpoint

    cfg = tmp_path / "cfg.py"
    cfg.write_text(CONSTRUCTOR_CONFIG.format(base=str(CONFIG)))
    helper.BUILT.clear()
    code, err = cli("train", str(cfg), "--work-dir", str(tmp_path / "wd"), "--progress", "off", "--cfg-options",
                    "runner.max_epochs=1", "data.samples_per_gpu=256", "log_config.interval=2")
    assert code == 0, err
    assert len(helper.BUILT) == 1
    # DigitsNet: net.0 = Linear(64, 128), net.3 = Linear(128, 10); the last Linear gets lr, the one before lr / 2.
    expected = [(0.1, 1e-4, (10, 128)), (0.1, 0.0, (10,)), (0.05, 1e-4, (128, 64)), (0.05, 0.0, (128,))]
    built = helper.BUILT[0].param_groups
    assert [(g["initial_lr"], g["weight_decay"], tuple(g["params"][0].shape)) for g in built] == expected
    saved = load_checkpoint(tmp_path / "wd" / "epoch_1").optimizer["param_groups"]
    assert [(g["initial_lr"], g["weight_decay"]) for g in saved] == [e[:2] for e in expected]


@pytest.mark.usefixtures("_restore_logger")
def test_config_validation_finds_the_registered_constructor_or_names_the_key(tmp_path: Path) -> None:
    """`fsm-trainer plan` accepts the config with the constructor's module imported, and without it exits 2
    naming optimizer.constructor."""
    cfg = tmp_path / "cfg.py"
    cfg.write_text(CONSTRUCTOR_CONFIG.format(base=str(CONFIG)))
    code, err = cli("plan", str(cfg))
    assert code == 0, err
    cfg.write_text(CONSTRUCTOR_CONFIG.format(base=str(CONFIG)).replace("LayerDecayConstructorT", "NoSuchCtorT"))
    code, err = cli("plan", str(cfg))
    assert code == 2
    assert "optimizer.constructor: 'NoSuchCtorT' is not a registered optimizer constructor" in err
