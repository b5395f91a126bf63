"""``fsm_trainer.mmcv.base_module``: ``BaseModule.init_weights`` initialises as mmcv 1.7.2 does.

``tests/golden/mmcv_api/init.json`` (section ``init``) was written by ``tools/record_mmcv_init.py``
running the same :func:`init_cases` on mmcv 1.7.2's ``BaseModule``: each model is built and
initialised after ``torch.manual_seed(0)``, so equal tensors mean the same initialisers, applied
to the same modules, drawing from the random stream in the same order. Constant fills must be
bit-equal; random draws are compared with a relative tolerance of 1e-6 only because vectorised
math (``normal_``'s Box-Muller, ``erfinv_``) may round the last bit differently on another CPU:
any difference in what is drawn, or in which order, changes the values completely.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _mmcv_init_tool import GOLDEN, TOOL

from fsm_trainer.checkpoint import NotACheckpointError
from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.mmcv import base_module as bm
from fsm_trainer.mmcv.base_module import (
    BaseModule,
    InitCfgError,
    InitCfgKeyError,
    InitCfgTypeError,
    ModuleDict,
    ModuleList,
    Sequential,
    initialize,
)
from fsm_trainer.mmcv.checkpoint import save_checkpoint

API = SimpleNamespace(BaseModule=BaseModule, Sequential=Sequential, ModuleList=ModuleList, ModuleDict=ModuleDict)


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("sources")
    TOOL.write_sources(tmp)  # type: ignore[attr-defined]
    return TOOL.init_cases(API, tmp)  # type: ignore[attr-defined,no-any-return]


def _tensor(entry: dict) -> torch.Tensor:
    return torch.tensor(entry["values"], dtype=getattr(torch, entry["dtype"])).reshape(entry["shape"])


def _is_constant_fill(t: torch.Tensor) -> bool:
    return t.numel() <= 1 or bool((t == t.flatten()[0]).all())


def test_golden_exercises_every_initialiser() -> None:
    """The recorded cases cover the initialisers, overrides, containers and Pretrained, so the comparison means something."""
    cases = TOOL.init_configs("/x")  # type: ignore[attr-defined]
    text = json.dumps([c[2] for c in cases])
    for kind in ("Constant", "Xavier", "Normal", "TruncNormal", "Uniform", "Kaiming", "Caffe2Xavier", "Pretrained",
                 "override", "bias_prob", "prefix", "_BatchNorm"):
        assert kind in text
    assert set(GOLDEN["init"]) == {c[0] for c in cases}


@pytest.mark.parametrize("case", sorted(GOLDEN["init"]))
def test_init_weights_equal_mmcv(case: str, ours: dict) -> None:
    """Every parameter and buffer after ``init_weights`` equals mmcv's for the same seed and module tree."""
    gold, mine = GOLDEN["init"][case], ours[case]
    assert sorted(mine["tensors"]) == sorted(gold["tensors"])
    for key, entry in gold["tensors"].items():
        expected, got = _tensor(entry), _tensor(mine["tensors"][key])
        assert got.dtype == expected.dtype and got.shape == expected.shape, key
        if _is_constant_fill(expected) or not expected.is_floating_point():
            assert torch.equal(got, expected), f"{case}: {key}"
        else:
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9, msg=f"{case}: {key}")


@pytest.mark.parametrize("case", sorted(GOLDEN["init"]))
def test_is_init_flags_equal_mmcv(case: str, ours: dict) -> None:
    """``is_init`` of every BaseModule after ``init_weights`` is mmcv's (a single Pretrained dict leaves it False)."""
    assert ours[case]["is_init"] == GOLDEN["init"][case]["is_init"]


def test_bit_equal_on_this_machine(ours: dict) -> None:
    """Where torch is the recording's version, the override with ``bias_prob`` and the trunc-normal draws are bit-equal."""
    if torch.__version__ != GOLDEN["torch"]:
        pytest.skip(f"recorded with torch {GOLDEN['torch']}, running {torch.__version__}")
    for case, key in (("override", "cls.bias"), ("override", "cls.weight"), ("xavier_trunc", "bn.weight"),
                      ("nested", "branches.b.weight")):
        assert torch.equal(_tensor(ours[case]["tensors"][key]), _tensor(GOLDEN["init"][case]["tensors"][key])), key


def test_bias_prob_and_layer_matching_by_base_class() -> None:
    """``bias_prob=p`` fills ``-log((1-p)/p)``; ``layer`` matches the class or a direct base's name, not deeper ones."""

    class MyLinear(torch.nn.Linear):
        pass

    class Deeper(MyLinear):
        pass

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), MyLinear(2, 2), Deeper(2, 2))
    initialize(net, dict(type="Constant", layer="Linear", val=3.0, bias_prob=0.01))
    assert net[0].weight.unique().tolist() == [3.0] and net[1].weight.unique().tolist() == [3.0]
    assert torch.allclose(net[0].bias, torch.full((2,), -float(np.log(99.0))))
    assert not torch.equal(net[2].weight, torch.full((2, 2), 3.0))


def test_no_layer_initialises_nothing_but_override_does_the_whole_submodule() -> None:
    """Without ``layer`` the outer config touches nothing; an override covers every module under its name."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.Conv1d(2, 2, 1), torch.nn.BatchNorm1d(2)))
    before = net[0].weight.clone()
    initialize(net, dict(type="Constant", val=5.0, override=dict(type="Constant", name="1", val=7.0, bias=1.0)))
    assert torch.equal(net[0].weight, before)
    assert net[1][0].weight.unique().tolist() == [7.0] and net[1][1].weight.unique().tolist() == [7.0]
    assert net[1][1].bias.unique().tolist() == [1.0]


def test_children_init_weights_run_after_the_parent_and_win() -> None:
    """A child's own ``init_cfg`` is applied after its parent's, and a plain child's ``init_weights`` is called."""
    calls = []

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

        def init_weights(self) -> None:
            calls.append("plain")

    class Parent(BaseModule):
        def __init__(self) -> None:
            super().__init__(init_cfg=dict(type="Constant", layer="Linear", val=1.0))
            self.child = Sequential(torch.nn.Linear(2, 2), init_cfg=dict(type="Constant", layer="Linear", val=2.0))
            self.plain = Plain()

    p = Parent()
    p.init_weights()
    assert p.child[0].weight.unique().tolist() == [2.0]
    assert p.plain.fc.weight.unique().tolist() == [1.0]
    assert calls == ["plain"] and p.is_init and p.child.is_init


def test_second_call_warns_and_changes_nothing() -> None:
    """As mmcv: calling ``init_weights`` again warns and leaves the weights alone."""
    m = Sequential(torch.nn.Linear(2, 2), init_cfg=dict(type="Normal", layer="Linear"))
    m.init_weights()
    w = m[0].weight.clone()
    with pytest.warns(UserWarning, match="has been called more than once"):
        m.init_weights()
    assert torch.equal(m[0].weight, w)


def test_containers_and_repr() -> None:
    """The containers behave as torch's, carry a deep copy of ``init_cfg``, and ``repr`` shows it."""
    cfg = dict(type="Constant", layer="Linear", val=1.0)
    seq = Sequential(torch.nn.Linear(1, 1), torch.nn.ReLU(), init_cfg=cfg)
    lst = ModuleList([torch.nn.Linear(1, 1)], init_cfg=[cfg])
    dct = ModuleDict({"a": torch.nn.Linear(1, 1)}, init_cfg=cfg)
    cfg["val"] = 9.0
    assert len(seq) == 2 and isinstance(seq[0], torch.nn.Linear) and len(lst) == 1 and "a" in dct
    assert seq.init_cfg == dict(type="Constant", layer="Linear", val=1.0) and not seq.is_init
    assert "init_cfg={'type': 'Constant'" in repr(seq)
    assert "init_cfg" not in repr(BaseModule())
    for m in (seq, lst, dct):
        m.init_weights()
        assert m.is_init
    assert dct["a"].weight.item() == 1.0 and lst[0].weight.item() == 1.0


def test_pretrained_from_a_checkpoint_directory(tmp_path: Path) -> None:
    """``Pretrained`` reads a checkpoint directory written by ``save_checkpoint`` (also by its ``.pth`` name)."""

    class Backbone(BaseModule):
        def __init__(self, init_cfg: dict | None = None) -> None:
            super().__init__(init_cfg)
            self.fc = torch.nn.Linear(3, 2)

    class Detector(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = Backbone()
            self.head = torch.nn.Linear(2, 1)

    torch.manual_seed(1)
    src = Detector()
    save_checkpoint(src, tmp_path / "det.pth")
    whole = Detector()
    initialize(whole, dict(type="Pretrained", checkpoint=str(tmp_path / "det.pth")))
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), src.state_dict().values(), strict=True))
    part = Backbone(init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "det"), prefix="backbone"))
    part.init_weights()
    assert not part.is_init  # as mmcv: a single Pretrained dict returns before the flag is set
    assert torch.equal(part.fc.weight, src.backbone.fc.weight) and torch.equal(part.fc.bias, src.backbone.fc.bias)
    with pytest.raises(FsmTrainerError, match=r"prefix='neck\.'"):
        Backbone(init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "det"), prefix="neck")).init_weights()


def test_pretrained_with_numpy_meta_needs_allow_numpy(tmp_path: Path) -> None:
    """A ``.pth`` with NumPy scalars in ``meta`` is refused unless the config says ``allow_numpy=True``."""
    src = torch.nn.Linear(2, 2)
    torch.save({"meta": {"best": np.float64(0.5)}, "state_dict": src.state_dict()}, tmp_path / "np.pth")
    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(NotACheckpointError, match="allow_numpy"):
        initialize(net, dict(type="Pretrained", checkpoint=str(tmp_path / "np.pth"), prefix="x"))
    initialize(src, dict(type="Pretrained", checkpoint=str(tmp_path / "np.pth"), allow_numpy=True))


def test_pretrained_reports_mismatched_keys_on_the_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Pretrained loads non-strictly: what does not fit is reported as mmcv's message, the rest loaded."""
    torch.save({"state_dict": {"weight": torch.ones(2, 2), "extra": torch.ones(1)}}, tmp_path / "a.pth")
    net = torch.nn.Linear(2, 2)
    with caplog.at_level(logging.WARNING, logger="fsm_trainer"):
        initialize(net, dict(type="Pretrained", checkpoint=str(tmp_path / "a.pth")))
    assert net.weight.unique().tolist() == [1.0]
    assert "unexpected key in source state_dict: extra" in caplog.text
    assert "missing keys in source state_dict: bias" in caplog.text


@pytest.mark.parametrize(
    ("cfg", "error", "match"),
    [
        ("Normal", InitCfgTypeError, "init_cfg must be a dict or a list"),
        (dict(type="Gaussian"), InitCfgKeyError, "type='Gaussian' is not one of"),
        (dict(layer="Linear"), InitCfgKeyError, "type=None"),
        (dict(type="Constant", layer="Linear"), InitCfgTypeError, r"missing key\(s\) \['val'\]"),
        (dict(type="Normal", layer="Linear", sigma=1), InitCfgTypeError, r"unknown key\(s\) \['sigma'\]"),
        (dict(type="Normal", layer="Linear", bias="0"), InitCfgTypeError, "bias must be a number"),
        (dict(type="Normal", layer="Linear", bias_prob=1), InitCfgTypeError, "bias_prob must be a float"),
        (dict(type="Normal", layer=3), InitCfgTypeError, "layer must be a str or a list of str"),
        (dict(type="Xavier", layer="Linear", distribution="cauchy"), InitCfgError, "distribution must be"),
        (dict(type="Kaiming", layer="Linear", mode="fan_avg"), InitCfgError, "mode must be 'fan_in' or 'fan_out'"),
        (dict(type="Pretrained", checkpoint="x.pth", layer="Linear"), InitCfgTypeError, "unknown key"),
        (dict(type="Normal", layer="Linear", override=dict(type="Normal")), InitCfgError, "needs the key 'name'"),
        (dict(type="Normal", layer="Linear", override=dict(name="fc", std=2)), InitCfgError, "needs a 'type'"),
        (dict(type="Normal", layer="Linear", override=dict(name="head")), InitCfgError, "no submodule of that name"),
        (dict(type="Normal", layer="Linear", override="fc"), InitCfgTypeError, "override must be a dict"),
        ([dict(type="Normal", layer="Linear"), "Constant"], InitCfgTypeError, "entries must be dicts"),
    ],
)
def test_invalid_init_cfg(cfg: object, error: type[Exception], match: str) -> None:
    """Each invalid config raises an fsm_trainer error naming the offending entry, of mmcv's builtin type
    (TypeError for types and keys an initialiser does not take, KeyError for the type, else ValueError)."""
    net = Sequential(torch.nn.Linear(2, 2), init_cfg=cfg)  # type: ignore[arg-type]
    net.fc = torch.nn.Linear(2, 2)
    with pytest.raises(error, match=match) as info:
        net.init_weights()
    assert isinstance(info.value, InitCfgError) and isinstance(info.value, ValueError)
    builtin = {InitCfgTypeError: TypeError, InitCfgKeyError: KeyError, InitCfgError: ValueError}[error]
    assert isinstance(info.value, builtin) and isinstance(info.value, FsmTrainerError)
    assert not net.is_init


def test_types_constant_lists_every_initialiser() -> None:
    assert set(bm.TYPES) == {"Constant", "Xavier", "Normal", "TruncNormal", "Uniform", "Kaiming", "Caffe2Xavier",
                             "Pretrained"}
