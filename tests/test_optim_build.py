"""build_optimizer: mmcv's optimizer config and paramwise rules, with clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fsm_trainer.optim import OptimizerConfigError, build_optimizer, torch_optimizers


class Net(nn.Module):
    """conv (with bias), depthwise conv, BN, a 'head' Linear, and a top-level parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.param1 = nn.Parameter(torch.ones(1))
        self.conv1 = nn.Conv2d(3, 4, 1, bias=True)
        self.dwconv = nn.Conv2d(4, 4, 3, groups=4, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.sub = nn.Module()
        self.sub.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2, bias=False)
        self.frozen.weight.requires_grad_(False)


def _by_param(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, tuple[float, float]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(g["params"][0])]: (g["lr"], g["weight_decay"]) for g in opt.param_groups}


def test_without_paramwise_cfg_one_group():
    """Without paramwise_cfg all parameters share one group with the config's arguments."""
    model = Net()
    opt = build_optimizer(model, dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=1e-4))
    assert isinstance(opt, torch.optim.SGD) and len(opt.param_groups) == 1
    assert opt.param_groups[0]["momentum"] == 0.9


def test_paramwise_multipliers_have_mmcv_meanings():
    """bias_lr_mult, bias_decay_mult, norm_decay_mult and dwconv_decay_mult hit mmcv's parameters."""
    model = Net()
    lr, wd = 0.01, 1e-4
    cfg = dict(type="SGD", lr=lr, momentum=0.9, weight_decay=wd,
               paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.5, norm_decay_mult=0.0, dwconv_decay_mult=0.1))
    got = _by_param(model, build_optimizer(model, cfg))
    assert got["param1"] == (lr, wd)
    assert got["conv1.weight"] == (lr, wd)
    assert got["conv1.bias"] == (lr * 2, wd * 0.5)
    assert got["dwconv.weight"] == (lr, pytest.approx(wd * 0.1))
    assert got["bn.weight"] == (lr, 0.0) and got["bn.bias"] == (lr, 0.0)  # norm bias: no bias_lr_mult
    assert got["sub.head.bias"] == (lr * 2, wd * 0.5)
    assert got["frozen.weight"] == (lr, wd)  # kept in its own group, untouched


def test_custom_keys_longest_match_wins_and_skips_other_rules():
    """custom_keys: the longest key contained in the name wins; then bias_lr_mult does not apply."""
    model = Net()
    cfg = dict(type="SGD", lr=1.0, weight_decay=1.0, paramwise_cfg=dict(
        bias_lr_mult=10.0, custom_keys={"sub": dict(lr_mult=0.1), "sub.head": dict(lr_mult=0.5, decay_mult=0.0),
                                        ".param1": dict(decay_mult=3.0)}))
    got = _by_param(model, build_optimizer(model, cfg))
    assert got["sub.head.weight"] == (0.5, 0.0) and got["sub.head.bias"] == (0.5, 0.0)
    assert got["param1"] == (1.0, 3.0)  # top-level names are '.param1', as in mmcv
    assert got["conv1.bias"] == (10.0, 1.0)


def test_any_torch_optimizer_by_name():
    """Every torch.optim optimizer is available by name, with its own arguments."""
    assert {"SGD", "Adam", "AdamW", "RMSprop"} <= set(torch_optimizers())
    opt = build_optimizer(nn.Linear(2, 2), dict(type="AdamW", lr=1e-3, betas=(0.9, 0.95)))
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.9, 0.95)


@pytest.mark.parametrize(("cfg", "words"), [
    (dict(type="SDG", lr=0.1), ["'SDG'", "SGD", "AdamW"]),
    (dict(lr=0.1), ["'type'", "SGD"]),
    (dict(type="SGD", lr=0.1, momentun=0.9), ["'momentun'", "momentum"]),
    (dict(type="SGD", lr=0.1, paramwise_cfg=dict(bias_lr_mul=2.0)), ["'bias_lr_mul'", "bias_lr_mult"]),
    (dict(type="SGD", lr=0.1, paramwise_cfg=dict(norm_decay_mult=0.0)), ["norm_decay_mult", "weight_decay"]),
    (dict(type="SGD", lr=0.1, paramwise_cfg=dict(custom_keys={"a": dict(decay_mult=0.0)})), ["decay_mult"]),
    (dict(type="SGD", lr=0.1, paramwise_cfg=dict(custom_keys={"a": dict(lr=0.0)})), ["lr_mult", "decay_mult"]),
    (dict(type="SGD", lr=0.1, constructor="Mine"), ["constructor", "DefaultOptimizerConstructor"]),
])
def test_errors_list_what_exists(cfg, words):
    """An unknown type or key raises OptimizerConfigError listing what is allowed."""
    with pytest.raises(OptimizerConfigError) as info:
        build_optimizer(Net(), cfg)
    for w in words:
        assert w in str(info.value)


def test_bypass_duplicate_skips_shared_parameters_with_a_warning():
    """A parameter tied between two modules is added once with bypass_duplicate (mmcv warns)."""
    model = nn.Module()
    model.a, model.b = nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)
    model.b.weight = model.a.weight
    with pytest.warns(UserWarning, match="duplicate"):
        opt = build_optimizer(model, dict(type="SGD", lr=0.1, paramwise_cfg=dict(bypass_duplicate=True)))
    assert len(opt.param_groups) == 1


def test_wrapped_model_is_unwrapped():
    """A wrapper with .module (DataParallel-like) is optimised through its module."""
    inner = nn.Linear(2, 2)
    wrapper = nn.Module()
    wrapper.module = inner
    opt = build_optimizer(wrapper, dict(type="SGD", lr=0.1, paramwise_cfg=dict(bias_lr_mult=2.0)))
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.2]
