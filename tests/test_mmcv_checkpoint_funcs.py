"""``fsm_trainer.mmcv.checkpoint``: mmcv 1.7.2's module-level checkpoint functions on fsm_trainer checkpoints.

mmcv 1.7.2 facts used here (``mmcv/runner/checkpoint.py``): ``save_checkpoint`` writes
``{'meta', 'state_dict', 'optimizer'}`` with ``meta['CLASSES']`` from the model; a
``DataParallel`` is saved through ``.module``; ``load_checkpoint`` rewrites keys by
``revise_keys`` (default: a leading ``module.`` removed) and returns the checkpoint as read;
``load_state_dict`` ignores missing ``num_batches_tracked`` and reports
``'The model and loaded state dict do not match exactly'`` with the unexpected and missing
keys, raising ``RuntimeError`` when strict; ``get_state_dict`` keeps non-persistent buffers.
The ``.pth`` files standing for mmcv's are written with plain ``torch.save`` in mmcv's layout
(what mmcv 1.7.2's ``save_checkpoint`` writes: checked against it when this test was written).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fsm_trainer import checkpoint as C
from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.mmcv import EpochBasedRunner
from fsm_trainer.mmcv.checkpoint import (
    CheckpointArgumentError,
    MmcvCheckpointNameError,
    StateDictMismatchError,
    _load_checkpoint,
    _load_checkpoint_with_prefix,
    get_state_dict,
    load_checkpoint,
    load_state_dict,
    save_checkpoint,
    weights_to_cpu,
)


class Net(torch.nn.Module):
    CLASSES = ("cat", "dog")

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 3, 1)
        self.bn = torch.nn.BatchNorm1d(3)
        self.fc = torch.nn.Linear(3, 2)
        self.register_buffer("scratch", torch.zeros(2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x.unsqueeze(-1))).squeeze(-1))

    def train_step(self, data: Any, optimizer: Any, **kwargs: Any) -> dict[str, Any]:
        x, y = data
        loss = torch.nn.functional.cross_entropy(self(x), y)
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": len(y)}

    def val_step(self, data: Any, optimizer: Any = None, **kwargs: Any) -> dict[str, Any]:
        return self.train_step(data, optimizer)


def _trained(seed: int = 0) -> tuple[Net, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(4, 2)).sum().backward()
        opt.step()
    return net, opt


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_weights_optimizer_meta(tmp_path: Path) -> None:
    """save_checkpoint then load_checkpoint: same weights and buffers, the optimizer state, meta with CLASSES."""
    net, opt = _trained()
    meta = {"epoch": 3, "iter": 30, "note": "x"}
    path = save_checkpoint(net, tmp_path / "epoch_3.pth", optimizer=opt, meta=meta)
    assert path == tmp_path / "epoch_3" and path.is_dir() and not (tmp_path / "latest").exists()
    assert meta == {"epoch": 3, "iter": 30, "note": "x"}  # the caller's dict is not changed
    fresh, _ = _trained(seed=5)
    assert not _same_weights(fresh, net)
    ck = load_checkpoint(fresh, tmp_path / "epoch_3.pth")
    assert _same_weights(fresh, net)
    assert sorted(ck) == ["meta", "optimizer", "state_dict"]
    assert ck["meta"] == {"epoch": 3, "iter": 30, "note": "x", "CLASSES": ["cat", "dog"]}
    assert "scratch" not in ck["state_dict"]  # the persistent buffers only, as model.state_dict()
    opt2 = torch.optim.SGD(fresh.parameters(), lr=0.5, momentum=0.0)
    opt2.load_state_dict(ck["optimizer"])
    assert opt2.param_groups[0]["lr"] == 0.1 and opt2.param_groups[0]["momentum"] == 0.9
    for p, q in zip(opt.param_groups[0]["params"], opt2.param_groups[0]["params"], strict=True):
        assert torch.equal(opt.state[p]["momentum_buffer"], opt2.state[q]["momentum_buffer"])


def test_saved_directory_is_an_fsm_trainer_checkpoint(tmp_path: Path) -> None:
    """The directory is a verified fsm_trainer checkpoint: weights, optimizer, meta, counters from meta."""
    net, opt = _trained()
    path = save_checkpoint(net, str(tmp_path / "model"), optimizer=opt, meta={"epoch": 2, "iter": 8})
    C.verify(path)
    ck = C.load_checkpoint(path)
    assert sorted(ck.model) == sorted(net.state_dict())
    assert all(torch.equal(ck.model[k], v) for k, v in net.state_dict().items())
    assert ck.optimizer["param_groups"][0]["lr"] == 0.1
    assert ck.meta["config"]["epoch"] == 2 and (ck.state.epoch, ck.state.iter) == (2, 8)
    m = Net()
    C.load_weights(m, path)
    assert _same_weights(m, net)


def test_dict_of_optimizers_and_no_optimizer(tmp_path: Path) -> None:
    net, opt = _trained()
    other = torch.optim.Adam(net.fc.parameters(), lr=1e-3)
    ck = load_checkpoint(Net(), save_checkpoint(net, tmp_path / "two", optimizer={"a": opt, "b": other}))
    assert sorted(ck["optimizer"]) == ["a", "b"] and ck["optimizer"]["b"]["param_groups"][0]["lr"] == 1e-3
    assert "optimizer" not in load_checkpoint(Net(), save_checkpoint(net, tmp_path / "none"))


def test_wrapped_models_are_unwrapped(tmp_path: Path) -> None:
    """A DataParallel (or any module that only wraps ``.module``) is saved and loaded without ``module.``."""
    net, _ = _trained()

    class Wrapper(torch.nn.Module):
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

    path = save_checkpoint(torch.nn.DataParallel(net), tmp_path / "dp.pth")
    assert sorted(C.load_checkpoint(path).model) == sorted(net.state_dict())
    target = Wrapper(Net())
    load_checkpoint(target, path, strict=True)
    assert _same_weights(target.module, net)
    dp = torch.nn.DataParallel(Net())
    load_checkpoint(dp, path, strict=True)
    assert _same_weights(dp.module, net)


def test_loads_an_mmcv_pth_with_revise_keys(tmp_path: Path) -> None:
    """A ``.pth`` in mmcv's layout: weights loaded (``module.`` removed), the file's dict returned as read."""
    net, opt = _trained()
    sd = OrderedDict((f"module.{k}", v) for k, v in net.state_dict().items())
    sd._metadata = OrderedDict({"": {"version": 1}, "module.bn": {"version": 2}})  # type: ignore[attr-defined]
    torch.save({"meta": {"mmcv_version": "1.7.2", "time": "Mon", "epoch": 3, "CLASSES": ("cat", "dog")},
                "state_dict": sd, "optimizer": opt.state_dict()}, tmp_path / "epoch_3.pth")
    fresh = Net()
    ck = load_checkpoint(fresh, tmp_path / "epoch_3.pth", strict=True)
    assert _same_weights(fresh, net)
    assert ck["meta"]["CLASSES"] == ("cat", "dog") and next(iter(ck["state_dict"])) == "module.conv.weight"
    assert ck["optimizer"]["param_groups"][0]["momentum"] == 0.9
    nested = {"state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()}}
    torch.save(nested, tmp_path / "det.pth")
    with pytest.raises(StateDictMismatchError):
        load_checkpoint(Net(), tmp_path / "det.pth", strict=True)
    fresh = Net()
    load_checkpoint(fresh, tmp_path / "det.pth", strict=True, revise_keys=[(r"^backbone\.", "")])
    assert _same_weights(fresh, net)
    assert sorted(_load_checkpoint_with_prefix("backbone", tmp_path / "det.pth")) == sorted(net.state_dict())
    with pytest.raises(C.CheckpointMismatchError, match=r"prefix='neck\.'"):
        _load_checkpoint_with_prefix("neck.", tmp_path / "det.pth")


def test_plain_state_dict_file_and_map_location(tmp_path: Path) -> None:
    """A file holding the state dict itself loads too; ``map_location`` reaches the tensors of both formats."""
    net, _ = _trained()
    torch.save(net.state_dict(), tmp_path / "sd.pth")
    fresh = Net()
    ck = load_checkpoint(fresh, tmp_path / "sd.pth", map_location="cpu")
    assert _same_weights(fresh, net) and "conv.weight" in ck
    path = save_checkpoint(net, tmp_path / "d")
    out = _load_checkpoint(path, map_location=torch.device("meta"))
    assert out["state_dict"]["fc.weight"].device.type == "meta"
    with pytest.raises(CheckpointArgumentError, match="map_location"):
        load_checkpoint(Net(), path, map_location=lambda storage, loc: storage)


def test_numpy_in_meta_needs_allow_numpy(tmp_path: Path) -> None:
    """mmcv's runners write NumPy scalars in meta: refused by default with a hint, read with allow_numpy=True."""
    net, _ = _trained()
    torch.save({"meta": {"hook_msgs": {"best_score": np.float64(0.75)}}, "state_dict": net.state_dict()},
               tmp_path / "best.pth")
    with pytest.raises(C.NotACheckpointError, match="allow_numpy=True"):
        load_checkpoint(Net(), tmp_path / "best.pth")
    fresh = Net()
    ck = load_checkpoint(fresh, tmp_path / "best.pth", allow_numpy=True)
    assert ck["meta"]["hook_msgs"]["best_score"] == 0.75 and _same_weights(fresh, net)


def test_load_state_dict_reports_as_mmcv(caplog: pytest.LogCaptureFixture) -> None:
    """Unexpected, missing and mis-shaped keys in mmcv's message: a warning, or a RuntimeError when strict."""
    net = Net()
    sd = dict(net.state_dict())
    del sd["bn.num_batches_tracked"]
    load_state_dict(Net(), sd, strict=True)  # num_batches_tracked missing is not a mismatch
    sd["extra.weight"] = torch.ones(1)
    del sd["fc.bias"]
    sd["fc.weight"] = torch.ones(5, 5)
    with pytest.raises(StateDictMismatchError) as info:
        load_state_dict(Net(), sd, strict=True)
    text = str(info.value)
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, FsmTrainerError)
    assert text.startswith("The model and loaded state dict do not match exactly\n")
    assert "unexpected key in source state_dict: extra.weight" in text
    assert "missing keys in source state_dict: fc.bias" in text
    assert "size mismatch for fc.weight" in text
    target = Net()
    before = target.fc.weight.clone()
    log = logging.getLogger("mmcv_funcs_test")
    with caplog.at_level(logging.WARNING, logger="mmcv_funcs_test"):
        load_state_dict(target, sd, logger=log)
    assert "unexpected key in source state_dict: extra.weight" in caplog.text
    assert torch.equal(target.fc.weight, before) and torch.equal(target.conv.weight, net.conv.weight)


def test_load_state_dict_casts_dtypes_as_torch() -> None:
    """As mmcv (``_load_from_state_dict``): values are converted to the parameter's dtype."""
    net = torch.nn.Linear(2, 1)
    load_state_dict(net, {"weight": torch.ones(1, 2, dtype=torch.float64), "bias": torch.zeros(1, dtype=torch.int64)},
                    strict=True)
    assert net.weight.dtype == torch.float32 and net.weight.sum().item() == 2.0


def test_get_state_dict_and_weights_to_cpu() -> None:
    """mmcv's get_state_dict: nested DataParallel read through, non-persistent buffers kept, versions in _metadata."""
    inner = Net()
    outer = torch.nn.Module()
    outer.add_module("body", torch.nn.DataParallel(inner))
    sd = get_state_dict(outer)
    assert "body.conv.weight" in sd and "body.scratch" in sd and not any("module" in k for k in sd)
    assert sd._metadata["body.bn"] == {"version": 2}  # type: ignore[attr-defined]
    assert list(get_state_dict(torch.nn.DataParallel(torch.nn.Linear(1, 1)))) == ["weight", "bias"]
    assert all(not v.requires_grad for v in sd.values())
    assert get_state_dict(inner, keep_vars=True)["fc.weight"] is inner.fc.weight
    cpu = weights_to_cpu(sd)
    assert cpu._metadata is sd._metadata  # type: ignore[attr-defined]
    assert all(torch.equal(cpu[k], sd[k]) for k in sd)


def test_bad_arguments(tmp_path: Path) -> None:
    net = Net()
    with pytest.raises(CheckpointArgumentError, match="meta must be a dict or None") as info:
        save_checkpoint(net, tmp_path / "a", meta=[("epoch", 1)])  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)
    with pytest.raises(MmcvCheckpointNameError, match=r"'resnet50\.v1'"):
        save_checkpoint(net, tmp_path / "resnet50.v1.pth")
    with pytest.raises(MmcvCheckpointNameError, match="'latest'"):
        save_checkpoint(net, tmp_path / "latest.pth")
    with pytest.raises(C.CheckpointNotFoundError, match="no such file") as missing:
        load_checkpoint(net, tmp_path / "nothing.pth")
    assert isinstance(missing.value, FileNotFoundError)
    with pytest.raises(C.NotACheckpointError, match="download the file"):
        load_checkpoint(net, "torchvision://resnet50")
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    with pytest.raises(C.NotACheckpointError, match="no state_dict"):
        load_checkpoint(net, tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file at all" * 20)
    with pytest.raises(C.NotACheckpointError):
        load_checkpoint(net, tmp_path / "junk.pth")


def test_overwrite_and_latest_file(tmp_path: Path) -> None:
    """Saving again under a name replaces the checkpoint; a ``latest`` pointer file is read as its checkpoint."""
    a, _ = _trained(0)
    b, _ = _trained(1)
    save_checkpoint(a, tmp_path / "ck.pth")
    save_checkpoint(b, tmp_path / "ck.pth")
    C.write_latest(tmp_path, "ck")
    fresh = Net()
    load_checkpoint(fresh, tmp_path / "latest", strict=True)
    assert _same_weights(fresh, b)


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 2, generator=g), torch.randint(0, 2, (8,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=4)


def test_runner_reads_module_level_checkpoints(tmp_path: Path) -> None:
    """runner.load_checkpoint and runner.resume read save_checkpoint's directory; resume continues an epoch-based
    ``[('train', 1)]`` run from ``meta['epoch']``."""
    net, opt = _trained()
    save_checkpoint(net, tmp_path / "epoch_2.pth", optimizer=opt, meta={"epoch": 2, "iter": 4})
    log = logging.getLogger("mmcv_funcs_test")
    m = Net()
    r = EpochBasedRunner(m, optimizer=torch.optim.SGD(m.parameters(), lr=0.1), logger=log, max_epochs=3)
    r.load_checkpoint(str(tmp_path / "epoch_2.pth"))
    assert _same_weights(m, net)
    m2 = Net()
    opt2 = torch.optim.SGD(m2.parameters(), lr=0.5, momentum=0.9)
    r2 = EpochBasedRunner(m2, optimizer=opt2, work_dir=str(tmp_path / "wd"), logger=log, max_epochs=3)
    r2.register_training_hooks(None, dict(grad_clip=None))
    r2.resume(str(tmp_path / "epoch_2.pth"))
    assert _same_weights(m2, net) and (r2.epoch, r2.iter) == (2, 4) and opt2.param_groups[0]["lr"] == 0.1
    r2.run([_loader()], [("train", 1)])
    assert (r2.epoch, r2.iter) == (3, 6)


def test_runner_checkpoint_meta_has_the_counters(tmp_path: Path) -> None:
    """A checkpoint written by a run gives mmcv's ``meta['epoch']``/``meta['iter']`` (the counters to continue from)."""
    m = Net()
    r = EpochBasedRunner(m, optimizer=torch.optim.SGD(m.parameters(), lr=0.1), work_dir=str(tmp_path),
                         logger=logging.getLogger("mmcv_funcs_test"), max_epochs=2)
    r.register_training_hooks(None, dict(grad_clip=None), dict(interval=1))
    r.run([_loader()], [("train", 1)])
    fresh = Net()
    ck = load_checkpoint(fresh, tmp_path / "epoch_2.pth", strict=True)
    assert (ck["meta"]["epoch"], ck["meta"]["iter"]) == (2, 4)
    assert "optimizer" in ck and _same_weights(fresh, m)


def test_a_pth_file_is_never_read_as_a_latest_pointer(tmp_path: Path) -> None:
    """A one-line text file named ``.pth`` is a damaged PyTorch file, not a pointer to a checkpoint."""
    import logging

    from fsm_trainer.checkpoint import NotACheckpointError, load_weights
    from fsm_trainer.mmcv import EpochBasedRunner

    (tmp_path / "elsewhere").mkdir()
    bad = tmp_path / "epoch_1.pth"
    bad.write_text("elsewhere\n")
    net = torch.nn.Linear(2, 1)
    with pytest.raises(NotACheckpointError, match=r"epoch_1\.pth"):
        load_checkpoint(net, bad)
    with pytest.raises(NotACheckpointError, match=r"epoch_1\.pth"):
        load_weights(net, bad)
    runner = EpochBasedRunner(net, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), max_epochs=1,
                              logger=logging.getLogger("t"))
    with pytest.raises(NotACheckpointError, match=r"epoch_1\.pth"):
        runner.resume(bad)
