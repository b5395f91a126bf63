"""``fsm_trainer.mmcv.fp16``: mmcv 1.7.2's fp16 decorators and ``LossScaler``.

``tests/golden/mmcv_api/init.json`` (sections ``fp16`` and ``loss_scaler``) was written by
``tools/record_mmcv_init.py`` running the same :func:`fp16_scenario` and
:func:`loss_scaler_scenario` on mmcv 1.7.2 on the CPU: the dtypes a decorated method sees and
returns (argument by argument, nested), which modules ``wrap_fp16_model`` enables, and the loss
scale after each step of scripted overflow patterns. One intended difference is tested on its
own: inside ``auto_fp16`` the CPU autocasts to float16 here (mmcv's ``torch.cuda.amp.autocast``
is a no-op there), as CUDA does in both.
"""

from __future__ import annotations

import warnings
from collections import namedtuple
from types import SimpleNamespace

import pytest
import torch
from _mmcv_init_tool import GOLDEN, TOOL

from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.mmcv.fp16 import (
    Fp16UsageError,
    LossScaler,
    LossScalerError,
    auto_fp16,
    cast_tensor_type,
    force_fp32,
    patch_norm_fp32,
    wrap_fp16_model,
)

API = SimpleNamespace(auto_fp16=auto_fp16, force_fp32=force_fp32, wrap_fp16_model=wrap_fp16_model,
                      cast_tensor_type=cast_tensor_type, LossScaler=LossScaler)


def test_golden_casts_something() -> None:
    """The recording shows casts in both directions and an untouched disabled module, so equality means something."""
    g = GOLDEN["fp16"]
    assert g["off"]["every"][1] == "float32" and g["on"]["every"][1] == "float16"
    assert g["on"]["loss"][1] == "float32" and g["on"]["post"][1:] == ["float16", "float16", "float16"]


@pytest.mark.parametrize("part", sorted(GOLDEN["fp16"]))
def test_fp16_scenario_equals_mmcv(part: str) -> None:
    """What decorated methods see and return, which modules get ``fp16_enabled``, the casts: mmcv's, part by part."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation (torch.cuda.amp) or autocast warning either
        ours = TOOL.fp16_scenario(API)  # type: ignore[attr-defined]
    assert ours[part] == GOLDEN["fp16"][part]


@pytest.mark.parametrize("part", sorted(GOLDEN["loss_scaler"]))
def test_loss_scaler_equals_mmcv(part: str) -> None:
    """The scale sequence under scripted overflows, state dicts, resume and ``has_overflow``: mmcv's."""
    assert TOOL.loss_scaler_scenario(API)[part] == GOLDEN["loss_scaler"][part]  # type: ignore[attr-defined]


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fp16_enabled = False
        self.fc = torch.nn.Linear(4, 3)

    @auto_fp16(apply_to=("x",))
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        return self.fc(x), torch.is_autocast_enabled(x.device.type)

    @auto_fp16(apply_to=("x",), out_fp32=True)
    def forward_fp32(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    @force_fp32(apply_to=("x",))
    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        return self.fc(x), torch.is_autocast_enabled(x.device.type)

    @auto_fp16(apply_to=("x",))
    def head_then_loss(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        return self.loss(self.fc(x))


def test_auto_fp16_autocasts_on_the_inputs_device() -> None:
    """Enabled, ``auto_fp16`` runs under float16 autocast on the CPU: float32 weights meet float16 inputs."""
    net = _Net()
    x = torch.randn(2, 4)
    out, on = net(x)
    assert out.dtype == torch.float32 and not on
    wrap_fp16_model(net)
    assert net.fc.weight.dtype == torch.float32  # not converted, as mmcv with torch >= 1.6
    out, on = net(x)
    assert out.dtype == torch.float16 and on
    assert net.forward_fp32(x).dtype == torch.float32
    torch.testing.assert_close(out.float(), net.fc(x), rtol=1e-2, atol=1e-2)


def test_force_fp32_turns_autocast_off_inside_auto_fp16() -> None:
    """``force_fp32`` inside an ``auto_fp16`` method computes in float32 with autocast off."""
    net = _Net()
    net.fc = torch.nn.Linear(4, 4)
    wrap_fp16_model(net)
    out, on = net.head_then_loss(torch.randn(2, 4))
    assert out.dtype == torch.float32 and not on
    assert not torch.is_autocast_enabled("cpu")  # restored after the call


@pytest.mark.gpu
def test_auto_fp16_on_cuda() -> None:
    """On CUDA the same decorators autocast there (what mmcv's ``torch.cuda.amp.autocast`` did)."""
    net = _Net().cuda()
    wrap_fp16_model(net)
    out, on = net(torch.randn(2, 4, device="cuda"))
    assert out.dtype == torch.float16 and on
    out, on = net.loss(torch.randn(2, 4, device="cuda").half())
    assert out.dtype == torch.float32 and not on


def test_extra_positional_arguments_and_named_tuples_pass_through() -> None:
    """Arguments beyond the named ones reach the method uncast (mmcv drops them); named tuples keep their type."""
    Pair = namedtuple("Pair", "a b")

    class M(torch.nn.Module):
        fp16_enabled = True

        @auto_fp16()
        def f(self, x: Pair, *rest: torch.Tensor) -> tuple[Pair, tuple[torch.Tensor, ...]]:
            return x, rest

    x, rest = M().f(Pair(torch.ones(1), torch.ones(1, dtype=torch.long)), torch.ones(1))
    assert isinstance(x, Pair) and x.a.dtype == torch.float16 and x.b.dtype == torch.long
    assert len(rest) == 1 and rest[0].dtype == torch.float32


def test_decorating_a_non_module_raises_a_type_error() -> None:
    """Called on something that is not an ``nn.Module`` (or the given ``supported_types``): a TypeError naming it."""
    fn = auto_fp16()(lambda self, x: x)
    with pytest.raises(Fp16UsageError, match="called on str") as info:
        fn("not a module", torch.ones(1))
    assert isinstance(info.value, TypeError) and isinstance(info.value, FsmTrainerError)

    class Thing:
        fp16_enabled = True

        @auto_fp16(supported_types=(object,))
        def f(self, x: torch.Tensor) -> torch.Tensor:
            return x

    assert Thing().f(torch.ones(1)).dtype == torch.float16
    with pytest.raises(Fp16UsageError, match="force_fp32"):
        force_fp32()(lambda self: None)()


def test_patch_norm_fp32_keeps_norms_in_float32() -> None:
    """After ``half()``, batch and group norms go back to float32; a group norm takes and returns float16."""
    net = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 1), torch.nn.BatchNorm1d(4), torch.nn.GroupNorm(2, 4)).half()
    assert patch_norm_fp32(net) is net
    assert net[0].weight.dtype == torch.float16
    assert net[1].weight.dtype == torch.float32 and net[2].weight.dtype == torch.float32
    out = net[2](torch.randn(3, 4, 5).half())
    assert out.dtype == torch.float16


def test_loss_scaler_arguments_are_checked() -> None:
    with pytest.raises(LossScalerError, match="mode='auto'") as info:
        LossScaler(mode="auto")
    assert isinstance(info.value, ValueError)
    s = LossScaler()
    with pytest.raises(KeyError, match="missing keys") as missing:
        s.load_state_dict({"cur_scale": 2.0})
    assert isinstance(missing.value, FsmTrainerError)
    with pytest.raises(LossScalerError, match="mode='x'"):
        s.load_state_dict({**s.state_dict(), "mode": "x"})
    state = LossScaler(init_scale=4.0, mode="static").state_dict()
    s.load_state_dict(state)
    assert s.state_dict() == state and s.loss_scale == 4.0
