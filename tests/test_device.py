"""Devices: resolving, moving models and batches, mixed precision from a config, backend flags, compile.

The ``gpu`` tests run where CUDA is available (``tools/gpu_check.sh``); elsewhere they are skipped.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
from pathlib import Path

import attrs
import pytest
import torch
from torch import nn

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.checkpoint import load_checkpoint
from fsm_trainer.device import (
    DeviceError,
    amp_from_config,
    apply_backend_flags,
    backend_flags,
    batches_to,
    check_backend_flags,
    check_compile,
    check_device,
    check_fp16,
    compile_model,
    loader_kwargs,
    move_batch,
    place_model,
    resolve_device,
    restore_backend_flags,
)
from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.hooks import checkpoint_hook, empty_cache_hook, optimizer_hook

META = torch.device("meta")  # a device every build has: moves are real, values are not
CUDA = torch.cuda.is_available()


# --------------------------------------------------------------------------- move_batch, every container


Pair = collections.namedtuple("Pair", "x label")


@dataclasses.dataclass
class Sample:
    img: torch.Tensor
    name: str
    extra: list = dataclasses.field(default_factory=list)
    cached: torch.Tensor | None = dataclasses.field(default=None, init=False)


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenSample:
    img: torch.Tensor
    n: int


@attrs.frozen
class AttrsSample:
    img: torch.Tensor
    _private: torch.Tensor
    tag: str = "t"


@attrs.define(slots=False)
class AttrsMutable:
    boxes: list
    score: torch.Tensor = attrs.field(init=False, factory=lambda: torch.ones(1))


class WithTo:
    def __init__(self, t: torch.Tensor) -> None:
        self.t = t
        self.calls = []

    def to(self, device):
        self.calls.append(device)
        return WithTo(self.t.to(device))


class DataContainer:
    """mmcv's DataContainer layout: the payload in ``_data``, read-only ``data``, ``cpu_only``."""

    def __init__(self, data, cpu_only=False, stack=False):
        self._data, self._cpu_only, self._stack = data, cpu_only, stack

    @property
    def data(self):
        return self._data

    @property
    def cpu_only(self):
        return self._cpu_only


class Counter(collections.UserDict):
    pass


def on_meta(t) -> bool:
    return isinstance(t, torch.Tensor) and t.device == META


def test_move_batch_plain_containers():
    batch = {"img": torch.ones(2, 3), "list": [torch.zeros(1), (torch.ones(1), "s", 3)], "none": None}
    out = move_batch(batch, "meta")
    assert type(out) is dict and on_meta(out["img"]) and out["img"].shape == (2, 3)
    assert type(out["list"]) is list and on_meta(out["list"][0])
    assert type(out["list"][1]) is tuple and on_meta(out["list"][1][0]) and out["list"][1][1:] == ("s", 3)
    assert out["none"] is None
    assert on_meta(batch["img"]) is False  # the input is not changed


def test_move_batch_namedtuple_dataclass_attrs():
    sample = Sample(torch.ones(1), "a", [torch.zeros(2)])
    sample.cached = torch.ones(3)
    frozen = FrozenSample(torch.ones(1), 4)
    rec = AttrsSample(torch.ones(1), torch.zeros(1))
    mut = AttrsMutable([torch.ones(2)])
    out = move_batch([Pair(torch.ones(1), "cat"), sample, frozen, rec, mut], META)
    p, s, f, r, m = out
    assert type(p) is Pair and on_meta(p.x) and p.label == "cat"
    assert type(s) is Sample and on_meta(s.img) and s.name == "a" and on_meta(s.extra[0]) and on_meta(s.cached)
    assert type(f) is FrozenSample and on_meta(f.img) and f.n == 4
    assert type(r) is AttrsSample and on_meta(r.img) and on_meta(r._private) and r.tag == "t"
    assert type(m) is AttrsMutable and on_meta(m.boxes[0]) and on_meta(m.score)
    assert not on_meta(sample.img) and not on_meta(rec.img) and not on_meta(mut.score)


def test_move_batch_to_method_mappings_and_subclasses():
    w = WithTo(torch.ones(1))
    od = collections.OrderedDict(a=torch.ones(1))
    dd = collections.defaultdict(list, a=torch.ones(1))
    ud = Counter(a=torch.ones(1))
    out = move_batch({"w": w, "od": od, "dd": dd, "ud": ud}, META)
    assert w.calls == [META] and on_meta(out["w"].t)
    assert type(out["od"]) is collections.OrderedDict and on_meta(out["od"]["a"])
    assert type(out["dd"]) is collections.defaultdict and out["dd"].default_factory is list and on_meta(out["dd"]["a"])
    assert type(out["ud"]) is Counter and on_meta(out["ud"]["a"])
    assert not on_meta(od["a"])


def test_move_batch_data_container():
    """cpu_only containers stay as they are; others are copied with their data moved."""
    keep = DataContainer([torch.ones(1)], cpu_only=True)
    moved = DataContainer(torch.ones(2), stack=True)
    out = move_batch({"img_metas": keep, "img": moved}, META)
    assert out["img_metas"] is keep and not on_meta(keep.data[0])
    assert type(out["img"]) is DataContainer and on_meta(out["img"].data) and out["img"]._stack is True
    assert not on_meta(moved.data)


def test_move_batch_leaves_other_values_and_same_device_tensors():
    t = torch.ones(1)
    assert move_batch(t, "cpu") is t
    batch = ("a", 1, 2.0, None, b"x", int)
    assert move_batch(batch, "cpu") == batch
    assert move_batch(batch, None) is batch
    with pytest.raises(DeviceError, match="resolve 'auto' first"):
        move_batch(batch, "auto")


def test_batches_to_wraps_only_for_an_accelerator():
    def step(b):
        return {"b": b}

    assert batches_to(step, None) is step
    assert batches_to(step, torch.device("cpu")) is step
    wrapped = batches_to(step, META)
    assert wrapped.__name__ == "step" and wrapped.__wrapped__ is step
    assert on_meta(wrapped((torch.ones(1),))["b"][0])


# --------------------------------------------------------------------------- resolving


def test_resolve_device_values():
    assert resolve_device(None) is None
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto") is None  # no module: nothing to place
    expected = torch.device("cuda", torch.cuda.current_device()) if CUDA else torch.device("cpu")
    assert resolve_device("auto", model=nn.Linear(1, 1)) == expected
    with pytest.raises(DeviceError, match=r"^device: expected 'auto', 'cpu', 'cuda'"):
        resolve_device("gpu0")
    assert issubclass(DeviceError, FsmTrainerError) and issubclass(DeviceError, ValueError)
    assert check_device("cuda:3") == [] and check_device(42, "env.device")[0].startswith("env.device: expected")


@pytest.mark.skipif(CUDA, reason="checks the error of a machine without CUDA")
def test_resolve_cuda_without_cuda_says_so():
    with pytest.raises(DeviceError, match="'cuda' asked for, but CUDA is not available here"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), model=nn.Linear(1, 1),
            data_loaders=[[0]], train_step=lambda b: {}, val_step=lambda b: {}, device="cuda:0")


def test_loader_kwargs():
    assert loader_kwargs("cpu") == {} and loader_kwargs(None) == {}
    assert loader_kwargs("cuda:1") == {"pin_memory": True}
    assert loader_kwargs(torch.device("cuda")) == {"pin_memory": True}
    assert loader_kwargs("auto") == ({"pin_memory": True} if CUDA else {})


# --------------------------------------------------------------------------- run(device=...)


def test_run_moves_the_model_once_and_every_batch():
    """On a non-CPU device (meta here) the model moves before the run and batches before each step."""
    model = nn.Linear(3, 1)
    seen = []

    def step(batch):
        seen.append((batch[0].device, model.weight.device))
        return {}

    run(TrainState(), compile_workflow([("train", 1), ("val", 1)], max_epochs=2), model=model,
        data_loaders=[[(torch.ones(2, 3), 0)] * 2, [(torch.ones(1, 3), 1)]], train_step=step, val_step=step,
        device="meta")
    assert seen == [(META, META)] * 6


def test_run_on_cpu_does_not_touch_batches_and_none_moves_nothing():
    model = nn.Linear(3, 1)
    seen = []
    batch = (torch.ones(2, 3), torch.zeros(2, 1))

    def step(b):
        seen.append(b is batch)
        return {}

    for device in ("cpu", "auto", None):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), model=model, data_loaders=[[batch]],
            train_step=step, val_step=step, device=device)
    assert seen == [True, True, True]
    meta_model = nn.Linear(1, 1).to("meta")
    run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), model=meta_model, data_loaders=[[batch]],
        train_step=step, val_step=step, device=None)
    assert meta_model.weight.device == META


def test_place_model_keeps_parameters_or_refuses():
    model = nn.Linear(2, 1)
    assert place_model(model, torch.device("cpu")) is False  # already there
    assert place_model(model, None) is False
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    # meta tensors cannot take a CPU Parameter's place, so the move would orphan the optimizer's parameters
    with pytest.raises(DeviceError, match="replaced its Parameter objects"):
        place_model(model, META, opt)


def test_amp_on_another_device_than_the_run_is_warned(caplog):
    amp = amp_from_config({"loss_scale": 512.0}, "cpu")
    train = amp.wrap(lambda b: {})
    assert train.amp is amp
    table = compile_workflow([("train", 1)], max_epochs=1)
    with caplog.at_level(logging.WARNING, logger="fsm_trainer"):
        run(TrainState(), table, model=nn.Linear(2, 1), data_loaders=[[0]], train_step=train, val_step=train,
            device="cpu")
        assert "autocasts" not in caplog.text
        run(TrainState(), table, model=nn.Linear(2, 1), data_loaders=[[0]], train_step=train, val_step=train,
            device="meta")
    assert "the train step autocasts on cpu but the run trains on meta" in caplog.text


# --------------------------------------------------------------------------- mixed precision from a config


def test_amp_from_config_on_cpu_uses_bfloat16_and_says_so():
    amp = amp_from_config({"loss_scale": 512.0}, "cpu")
    assert (amp.device_type, amp.dtype, amp.uses_scaler, amp.scaler) == ("cpu", torch.bfloat16, False, None)
    text = amp.describe()
    assert text.startswith("mixed precision: bfloat16 autocast on cpu, no loss scaling")
    assert "loss_scale=512.0 is not used" in text and "fp16.dtype='float16'" in text
    assert amp_from_config(None, "cpu") is None


@pytest.mark.parametrize(("cfg", "static", "scaling"), [
    ({"loss_scale": 512.0, "dtype": "float16"}, 512.0, "static loss scale of 512"),
    ({"loss_scale": "dynamic", "dtype": "fp16"}, None, "dynamic loss scale"),
    ({"loss_scale": {"init_scale": 64.0, "growth_interval": 10}, "dtype": "float16"}, None,
     "GradScaler(init_scale=64.0, growth_interval=10)"),
])
def test_amp_from_config_float16_honours_loss_scale(cfg, static, scaling):
    amp = amp_from_config(cfg, "cpu")
    assert amp.dtype == torch.float16 and amp.uses_scaler and amp.static_scale == static
    assert scaling in amp.describe()
    if isinstance(cfg["loss_scale"], dict):
        assert amp.scaler.get_scale() == 64.0 and amp.scaler.get_growth_interval() == 10


def test_amp_config_errors_are_path_named():
    errors = check_fp16({"loss_scale": "auto", "dtype": "int8", "scale": 1}, "cfg.fp16")
    assert errors == [
        "cfg.fp16.scale: unknown key; allowed: loss_scale, dtype, grad_clip, coalesce, bucket_size_mb, distributed, "
        "cumulative_iters",
        "cfg.fp16.loss_scale: must be 'dynamic', a positive number or a dict of GradScaler arguments, got 'auto'",
        "cfg.fp16.dtype: must be 'float16' or 'bfloat16', got 'int8'",
    ]
    assert check_fp16([1]) == ["fp16: must be a dict such as dict(loss_scale=512.0), or None, got [1]"]
    assert check_fp16({"loss_scale": 512.0, "grad_clip": None}) == []
    with pytest.raises(DeviceError, match=r"fp16.loss_scale.growth_interval: must be a positive int, got 0"):
        amp_from_config({"loss_scale": {"growth_interval": 0}}, "cpu")
    with pytest.raises(DeviceError, match="mixed precision runs on 'cpu' or 'cuda' here, not on 'meta'"):
        amp_from_config({}, "meta")


def test_the_run_logs_its_precision_once(caplog):
    """An fp16 config on the CPU: one INFO line saying bfloat16 autocast, no loss scaling."""
    amp = amp_from_config({"loss_scale": 512.0}, "cpu")
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train, val = amp.steps(model, opt, loss_fn=nn.functional.mse_loss)
    batches = [(torch.randn(4, 2), torch.randn(4, 1))] * 3
    with caplog.at_level(logging.INFO, logger="fsm_trainer"):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=2), model=model, optimizer=opt,
            data_loaders=[batches], train_step=train, val_step=val, hooks=[optimizer_hook(amp=amp)])
    lines = [r.getMessage() for r in caplog.records if "mixed precision" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith("OptimizerHook: mixed precision: bfloat16 autocast on cpu, no loss scaling "
                               "(fp16 on the CPU")


# --------------------------------------------------------------------------- backend flags


@pytest.fixture
def saved_flags():
    saved = backend_flags()
    yield saved
    restore_backend_flags(saved)


def test_apply_backend_flags_sets_and_returns_previous(saved_flags):
    before = apply_backend_flags(cudnn_benchmark=True, allow_tf32=True)
    assert before == saved_flags
    assert torch.backends.cudnn.benchmark is True and torch.backends.cudnn.allow_tf32 is True
    assert torch.backends.cuda.matmul.allow_tf32 is True and torch.get_float32_matmul_precision() == "high"
    apply_backend_flags(matmul_precision="highest")
    assert torch.backends.cuda.matmul.allow_tf32 is False
    apply_backend_flags(allow_tf32=True, matmul_precision="medium")
    assert torch.get_float32_matmul_precision() == "medium"
    restore_backend_flags(before)
    assert backend_flags() == saved_flags


def test_backend_flag_errors_are_path_named(saved_flags):
    assert check_backend_flags(cudnn_benchmark=1, matmul_precision="low", path="env_cfg.") == [
        "env_cfg.cudnn_benchmark: must be true or false, got 1",
        "env_cfg.matmul_precision: must be one of 'highest', 'high', 'medium', got 'low'",
    ]
    with pytest.raises(DeviceError, match=r"allow_tf32: true conflicts with matmul_precision='highest'"):
        apply_backend_flags(cudnn_benchmark=True, allow_tf32=True, matmul_precision="highest")
    assert backend_flags() == saved_flags  # nothing set on an error


# --------------------------------------------------------------------------- torch.compile


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x):
        return self.body(x)


def test_compile_options_are_checked():
    assert check_compile(True) == [] and check_compile({"backend": "eager", "fullgraph": False}) == []
    (error,) = check_compile({"speed": 1})
    assert error.startswith("compile.speed: unknown key; allowed: fullgraph, dynamic, backend, mode, options")
    assert check_compile("yes")[0].startswith("compile: must be true, false or a dict")
    with pytest.raises(DeviceError, match=r"compile= needs an nn\.Module model"):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[0]],
            train_step=lambda b: {}, val_step=lambda b: {}, compile=True)


def test_compile_model_replaces_and_restores_forward_only():
    calls = []

    def backend(gm, inputs):
        calls.append(len(gm.graph.nodes))
        return gm.forward

    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())  # a built-in module: its forward lives in torch
    keys = list(model.state_dict())
    undo = compile_model(model, {"backend": backend})
    model(torch.randn(2, 3))
    assert calls and list(model.state_dict()) == keys
    undo()
    assert "forward" not in model.__dict__
    assert compile_model(model, False) is None


def _compiled_run(tmp_path, *, epochs, resume=None, compile=True, model=None):
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 4, generator=g), torch.randint(0, 2, (8,), generator=g)) for _ in range(3)]
    final = run(TrainState(), compile_workflow([("train", 1)], max_epochs=epochs), model=model or net, optimizer=opt,
                data_loaders=[batches], loss_fn=nn.functional.cross_entropy, work_dir=tmp_path,
                hooks=[optimizer_hook(), checkpoint_hook(1)], resume=resume, compile=compile)
    return final, net


def _check_compiled_resume(tmp_path, compile):
    _, full = _compiled_run(tmp_path / "full", epochs=3, compile=compile)
    _, first = _compiled_run(tmp_path / "part", epochs=2, compile=compile)
    ck = load_checkpoint(tmp_path / "part" / "epoch_2")
    assert sorted(ck.model) == sorted(first.state_dict()) == ["body.0.bias", "body.0.weight", "body.2.bias",
                                                              "body.2.weight"]
    assert "forward" not in first.__dict__  # the run gave the plain forward back
    final, resumed = _compiled_run(tmp_path / "part", epochs=3, resume=tmp_path / "part" / "epoch_2",
                                   compile=compile)
    assert final.epoch == 3
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_compile_keeps_plain_checkpoint_keys_and_resumes_exactly(tmp_path):
    """compile= through dynamo (a backend running the captured graph as is: no compiler needed): the
    forward is captured, checkpoints keep plain keys, the resumed run ends with the same weights."""
    graphs = []

    def backend(gm, inputs):
        graphs.append(gm)
        return gm.forward

    _check_compiled_resume(tmp_path, {"backend": backend})
    assert graphs


def test_a_compiled_module_given_as_model_checkpoints_plain_keys(tmp_path):
    torch.manual_seed(0)
    net = Net()
    compiled = torch.compile(net, backend="eager")
    assert next(iter(compiled.state_dict())).startswith("_orig_mod.")
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), model=compiled, optimizer=opt,
        data_loaders=[[(torch.randn(2, 4), torch.tensor([0, 1]))]], loss_fn=nn.functional.cross_entropy,
        work_dir=tmp_path, hooks=[optimizer_hook(), checkpoint_hook(1)])
    assert sorted(load_checkpoint(tmp_path / "epoch_1").model) == sorted(net.state_dict())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compile_with_inductor_on_cpu(tmp_path):
    """The default backend (inductor, which needs a C++ compiler on the CPU): plain keys, exact resume."""
    try:
        torch.compile(lambda x: x * 2 + 1)(torch.ones(3))
    except Exception as exc:  # any failure to build a kernel here is an environment limit
        pytest.skip(f"torch.compile cannot build CPU kernels on this machine: {type(exc).__name__}: {exc}")
    _check_compiled_resume(tmp_path, True)


# --------------------------------------------------------------------------- empty cache


@pytest.mark.skipif(CUDA or torch.backends.mps.is_available(), reason="checks a machine without an accelerator")
def test_empty_cache_hook_has_nothing_to_do_without_an_accelerator():
    from fsm_trainer.context import RunContext

    hook = empty_cache_hook(after_iter=True)(RunContext(compile_workflow([("train", 1)], max_epochs=1), [[0]]))
    assert dict(hook.on) == {}


# --------------------------------------------------------------------------- on CUDA


def _digits(tmp_path: Path, **kw):
    pytest.importorskip("sklearn")
    from fsm_trainer.examples.digits import train

    return train(work_dir=tmp_path, log_interval=20, **kw)


@pytest.mark.gpu
def test_cuda_move_batch_pinned_non_blocking_and_optimizer_state():
    dev = torch.device("cuda", torch.cuda.current_device())
    x = torch.ones(4, 3).pin_memory()
    out = move_batch({"x": x, "pair": Pair(torch.zeros(2), "l")}, dev)
    torch.cuda.synchronize()
    assert out["x"].device == dev and out["pair"].x.device == dev and out["pair"].label == "l"
    model = nn.Linear(3, 1)
    w = model.weight
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(2, 3)).sum().backward()
    opt.step()
    assert place_model(model, dev, opt) is True
    assert model.weight is w and w.device == dev
    assert all(v.device == dev for st in opt.state.values() for v in st.values() if torch.is_tensor(v))
    assert resolve_device("auto", model=model) == dev  # a model already on the GPU stays there


@pytest.mark.gpu
def test_cuda_digits_reach_the_cpu_accuracy(tmp_path):
    """The digits example on CUDA (model and batches moved by run) reaches the CPU run's accuracy."""
    _, cpu_accs, _ = _digits(tmp_path / "cpu", epochs=8, device="cpu")
    final, gpu_accs, model = _digits(tmp_path / "gpu", epochs=8, device="cuda")
    assert next(model.parameters()).is_cuda and final.epoch == 8
    assert gpu_accs[-1] >= 0.93 and abs(gpu_accs[-1] - cpu_accs[-1]) <= 0.02
    logs = list((tmp_path / "gpu").glob("*.log.json"))
    assert logs and '"memory": ' in logs[0].read_text()  # mmcv's memory key in MB on CUDA
    assert all(isinstance(v, float) for v in final.outputs["log_vars"].values())


@pytest.mark.gpu
@pytest.mark.parametrize("loss_scale", [512.0, "dynamic"])
def test_cuda_fp16_with_grad_scaler(tmp_path, loss_scale, caplog):
    with caplog.at_level(logging.INFO, logger="fsm_trainer"):
        _, accs, _ = _digits(tmp_path, epochs=6, device="cuda", fp16={"loss_scale": loss_scale})
    assert accs[-1] >= 0.9 and not math.isnan(accs[-1])
    expected = "static loss scale of 512" if loss_scale == 512.0 else "dynamic loss scale"
    assert f"mixed precision: float16 autocast on cuda, GradScaler with a {expected}" in caplog.text
    amp = amp_from_config({"loss_scale": loss_scale}, "cuda")
    assert amp.dtype == torch.float16 and amp.scaler.is_enabled()


@pytest.mark.gpu
def test_cuda_resume_is_bit_identical(tmp_path):
    """Stopped after 2 of 4 epochs and resumed on the same GPU: the same weights as the uninterrupted run."""
    torch.backends.cudnn.deterministic = True
    _, full_accs, full = _digits(tmp_path / "full", epochs=4, device="cuda")
    _digits(tmp_path / "part", epochs=4, device="cuda", checkpoint_interval=1, max_epochs=2)
    final, accs, resumed = _digits(tmp_path / "part2", epochs=4, device="cuda",
                                   resume=tmp_path / "part" / "epoch_2")
    assert final.epoch == 4
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert accs[-1] == full_accs[-1]


# --------------------------------------------------------------------------- config keys

_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "digits_mlp.py"


@pytest.mark.parametrize(("option", "path"), [
    ("device=tpu", "device"), ("gpu_ids=[-1]", "gpu_ids"), ("cudnn_benchmark=yes", "cudnn_benchmark"),
    ("matmul_precision=fast", "matmul_precision"), ("compile=3", "compile"),
])
def test_config_device_keys_are_checked_before_any_work(tmp_path, capsys, option, path):
    """Bad device keys: exit 2 naming the key; nothing written."""
    from fsm_trainer.cli import main

    wd = tmp_path / "wd"
    code = main(["train", str(_CONFIG), "--work-dir", str(wd), "--cfg-options", option])
    assert code == 2
    assert f"{path}" in capsys.readouterr().err
    assert not wd.exists()


def test_config_device_reaches_run_and_gpu_ids_need_cuda():
    """device and compile from a config become run()'s arguments; gpu_ids picks cuda:k only with CUDA."""
    from fsm_trainer.config import load
    from fsm_trainer.config.build import build, run_device

    cfg = load(str(_CONFIG), ["device=cpu", "compile=False"])
    built = build(cfg, build_data=False)
    assert built.run_kwargs()["device"] == "cpu" and "compile" not in built.run_kwargs()
    gpu = load(str(_CONFIG), ["gpu_ids=[1]"])
    assert run_device(gpu) == ("cuda:1" if torch.cuda.is_available() else "auto")
