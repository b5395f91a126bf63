"""Checkpoint format, atomic writes, verification and refusal of unsafe or damaged input."""

from __future__ import annotations

import errno
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from fsm_trainer import TrainState, compile_workflow, rng, run
from fsm_trainer import checkpoint as C
from fsm_trainer.hooks import checkpoint_hook
from fsm_trainer.testing import CountingLoader, noop_step

TABLE = compile_workflow([("train", 1)], max_epochs=3)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))


def _save(directory: Path, name: str = "epoch_1", model: torch.nn.Module | None = None, **kw) -> Path:
    m = model or _model()
    opt = torch.optim.Adam(m.parameters())
    m(torch.randn(3, 4)).sum().backward()
    opt.step()
    return C.save_checkpoint(directory, name, state=TrainState(epoch=1, iter=7, phase=0, mode="train"),
                             table=TABLE, model=m.state_dict(), optimizer=opt.state_dict(), rng=rng.capture(), **kw)


def test_round_trip_restores_every_part(tmp_path):
    """Model, optimizer, hook states (tensors and data), RNG, state and table load back equal."""
    m = _model()
    opt = torch.optim.Adam(m.parameters())
    m(torch.randn(3, 4)).sum().backward()
    opt.step()
    hooks = {"EMA": {"ema": {"w": torch.arange(3.0)}, "swapped": True}, "Acc": {"k": 2, "pairs": {(1, 2): "x"}}}
    state = TrainState(epoch=1, iter=7, inner_iter=3, mode="train", phase=0, hook_states={"a": [1, 2.5]})
    path = C.save_checkpoint(tmp_path, "iter_7", state=state, table=TABLE, model=m.state_dict(),
                             optimizer=opt.state_dict(), hooks=hooks, rng=rng.capture(), meta={"config": {"lr": 0.1}})
    ck = C.load_checkpoint(path)
    assert ck.state == state and ck.table == TABLE
    for k, v in m.state_dict().items():
        assert torch.equal(ck.model[k], v)
    assert ck.optimizer["param_groups"] == opt.state_dict()["param_groups"]
    for i, st_ in opt.state_dict()["state"].items():
        assert all(torch.equal(ck.optimizer["state"][i][k], v) for k, v in st_.items())
    assert torch.equal(ck.hooks["EMA"]["ema"]["w"], torch.arange(3.0)) and ck.hooks["EMA"]["swapped"] is True
    assert ck.hooks["Acc"] == {"k": 2, "pairs": {(1, 2): "x"}}
    assert ck.meta["config"] == {"config": {"lr": 0.1}} and ck.meta["torch"] == torch.__version__
    assert (tmp_path / "latest").read_text().strip() == "iter_7"
    # The tensor file is plain safetensors: other tools read it.
    assert set(load_file(str(path / C.TENSOR_FILE))) >= {f"model/{k}" for k in m.state_dict()}


def test_tied_weights_are_stored_once_and_load_tied(tmp_path):
    """A tensor reached twice (tied weights) is written once and both names get its value."""
    lin = torch.nn.Linear(3, 3, bias=False)
    sd = {"a.weight": lin.weight, "b.weight": lin.weight}
    path = C.save_checkpoint(tmp_path, "x", state=TrainState(), table=TABLE, model=sd)
    assert len(load_file(str(path / C.TENSOR_FILE))) == 1
    ck = C.load_checkpoint(path)
    assert torch.equal(ck.model["a.weight"], lin.weight.detach()) and torch.equal(ck.model["b.weight"], lin.weight.detach())


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(value=plain)
def test_codec_round_trips_plain_data(value):
    """decode(encode(x)) == x for nested dicts (any hashable keys), lists, tuples and scalars."""
    tensors: dict = {}
    import json

    data = json.loads(json.dumps(C.encode(value, "v", tensors)))
    assert C.decode(data, tensors) == value


def test_codec_refuses_objects_naming_the_path():
    """A module inside a state_dict is refused with its path, not pickled."""
    with pytest.raises(TypeError, match=r"'hooks/X/fn'"):
        C.encode({"X": {"fn": print}}, "hooks", {})


# --------------------------------------------------------------------------- damage


def test_truncated_tensor_file_is_detected(tmp_path):
    """A truncated tensor file fails the size check, naming the file."""
    path = _save(tmp_path)
    f = path / C.TENSOR_FILE
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(C.CorruptCheckpointError, match=r"tensors\.safetensors.*truncated"):
        C.load_checkpoint(path)


def _flip(f: Path, from_end: int, bit: int) -> None:
    """Flip ``bit`` of the byte ``from_end`` bytes before the end of file ``f``."""
    raw = bytearray(f.read_bytes())
    raw[len(raw) - from_end] ^= bit
    f.write_bytes(bytes(raw))


@pytest.mark.parametrize("fname", [C.TENSOR_FILE, C.STATE_FILE])
def test_flipped_byte_is_detected(tmp_path, fname):
    """One flipped byte in a data file fails its checksum (safetensors alone would not notice)."""
    path = _save(tmp_path)
    _flip(path / fname, 5, 0x01)
    with pytest.raises(C.CorruptCheckpointError, match=r"checksum \(xxh3_128\) does not match"):
        C.load_checkpoint(path)


def test_checksum_false_skips_only_the_tensor_hash(tmp_path):
    """checksum=False loads a tensor file with a flipped byte, but still checks sizes and state."""
    path = _save(tmp_path)
    f = path / C.TENSOR_FILE
    _flip(f, 3, 0x10)
    assert C.load_checkpoint(path, checksum=False).state.iter == 7
    f.write_bytes(f.read_bytes()[:-1])
    with pytest.raises(C.CorruptCheckpointError, match="truncated"):
        C.load_checkpoint(path, checksum=False)
    s = path / C.STATE_FILE
    s.write_bytes(s.read_bytes().replace(b'"iter":7', b'"iter":8'))
    with pytest.raises(C.CorruptCheckpointError, match=C.STATE_FILE):
        C.load_checkpoint(path, checksum=False)


def _as_format_1(path: Path) -> None:
    """Rewrite a checkpoint's manifest the way format 1 wrote it (sha256 everywhere)."""
    import hashlib
    import json

    manifest = json.loads((path / C.MANIFEST).read_text())
    files = {f: {"bytes": info["bytes"], "sha256": hashlib.sha256((path / f).read_bytes()).hexdigest()}
             for f, info in manifest["files"].items()}
    body = {"format": "fsm_trainer.checkpoint/1", "files": files, "order": manifest["order"]}
    manifest = {**body, "sha256": hashlib.sha256(C._canonical(body)).hexdigest()}
    (path / C.MANIFEST).write_bytes(C._canonical(manifest))


def test_format_1_sha256_checkpoints_still_load_and_verify(tmp_path):
    """Checkpoints of the first format (sha256 checksums) load, and a flipped byte is still caught."""
    m = _model()
    path = _save(tmp_path, model=m)
    _as_format_1(path)
    ck = C.load_checkpoint(path)
    assert all(torch.equal(ck.model[k], v) for k, v in m.state_dict().items())
    _flip(path / C.TENSOR_FILE, 3, 0x10)
    with pytest.raises(C.CorruptCheckpointError, match=r"checksum \(sha256\) does not match"):
        C.load_checkpoint(path)


def test_unknown_format_is_refused_naming_the_known_ones(tmp_path):
    path = _save(tmp_path)
    mpath = path / C.MANIFEST
    mpath.write_bytes(mpath.read_bytes().replace(b"checkpoint/2", b"checkpoint/9"))
    with pytest.raises(C.CorruptCheckpointError, match=r"checkpoint/9.*is not one of.*checkpoint/1.*checkpoint/2"):
        C.load_checkpoint(path)


def test_every_flipped_manifest_byte_is_detected(tmp_path):
    """Flipping any single byte of the manifest makes the checkpoint invalid."""
    path = _save(tmp_path)
    f = path / C.MANIFEST
    good = f.read_bytes()
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x04
        f.write_bytes(bytes(bad))
        with pytest.raises(C.CheckpointError):
            C.verify(path)
    f.write_bytes(good)
    C.verify(path)


def test_missing_file_and_missing_resume_path(tmp_path):
    """A deleted tensor file is reported; a resume path that does not exist is a clear error."""
    path = _save(tmp_path)
    (path / C.TENSOR_FILE).unlink()
    with pytest.raises(C.CorruptCheckpointError, match="missing"):
        C.load_checkpoint(path)
    with pytest.raises(C.CheckpointNotFoundError, match="no such file"):
        run(TrainState(), TABLE, data_loaders=[CountingLoader(2)], train_step=noop_step, val_step=noop_step,
            resume=tmp_path / "nope")


def test_auto_resume_skips_a_corrupt_newest_checkpoint(tmp_path, caplog):
    """The newest checkpoint is corrupt: it is reported and the previous valid one is used."""
    _save(tmp_path, "epoch_1")
    newest = _save(tmp_path, "epoch_2")
    f = newest / C.TENSOR_FILE
    f.write_bytes(f.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="fsm_trainer"):
        ck = C.find_latest(tmp_path)
    assert ck is not None and ck.path.name == "epoch_1"
    assert "skipping invalid checkpoint" in caplog.text and "epoch_2" in caplog.text


def test_disk_full_keeps_previous_checkpoint(tmp_path):
    """ENOSPC during a save: a CheckpointWriteError naming the path; the previous checkpoint,
    the latest pointer and the directory are as before (no temporary left)."""
    _save(tmp_path, "epoch_1")
    before = sorted(p.name for p in tmp_path.iterdir())

    def full(point):
        if point == "mid_tensors":
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(C.CheckpointWriteError, match=r"epoch_2.*No space left") as info:
        _save(tmp_path, "epoch_2", faults=full)
    assert info.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "latest").read_text().strip() == "epoch_1"
    C.load_checkpoint(tmp_path / "latest")


def test_real_enospc_on_dev_full(tmp_path, monkeypatch):
    """Writing through /dev/full (a real ENOSPC from the kernel) surfaces as CheckpointWriteError."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    real_open = open

    def to_full(path, mode="r", *a, **k):
        if str(path).endswith(C.TENSOR_FILE) and "x" in mode:
            return real_open("/dev/full", "wb")
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("builtins.open", to_full)
    with pytest.raises(C.CheckpointWriteError) as info:
        _save(tmp_path, "epoch_1")
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert not any(".tmp-" in p.name for p in tmp_path.iterdir())


def test_model_mismatch_names_keys_and_strict_false_loads(tmp_path):
    """Another model's checkpoint: the error names missing/unexpected/shape keys; strict=False
    loads what fits."""
    path = _save(tmp_path)
    other = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 5),
                                torch.nn.Linear(5, 1))
    with pytest.raises(C.CheckpointMismatchError) as info:
        C.load_weights(other, path, strict=True)
    text = str(info.value)
    assert "3.weight" in text and "2.weight (2, 8) vs (5, 8)" in text and "strict=False" in text
    missing, unexpected, shapes = C.load_weights(other, path, strict=False)
    assert torch.equal(other[0].weight, C.load_checkpoint(path).model["0.weight"])
    assert "3.bias" in missing and "2.weight" in shapes and not unexpected


# --------------------------------------------------------------------------- hostile files


class _Evil:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.parametrize("force_unsafe_env", [False, True])
def test_malicious_pickle_never_runs(tmp_path, monkeypatch, force_unsafe_env):
    """A pickle whose loading would run a command is refused wherever it is put; the command
    never runs, even with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1."""
    if force_unsafe_env:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    sentinel = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "x": _Evil(sentinel)}, evil)
    raw_pickle = tmp_path / "evil.pkl"
    raw_pickle.write_bytes(pickle.dumps(_Evil(sentinel)))
    with pytest.raises(C.NotACheckpointError, match="never unpickles"):
        C.load_checkpoint(evil)
    with pytest.raises(C.NotACheckpointError, match="a pickle"):
        C.load_checkpoint(raw_pickle)
    with pytest.raises(C.NotACheckpointError, match="weights_only"):
        C.load_weights(_model(), evil)
    # As the latest pointer and inside a checkpoint directory.
    work = tmp_path / "work"
    path = _save(work)
    (work / "latest").write_bytes(evil.read_bytes())
    with pytest.raises(C.NotACheckpointError):
        run(TrainState(), TABLE, data_loaders=[CountingLoader(2)], train_step=noop_step, val_step=noop_step,
            resume=work / "latest")
    (path / C.TENSOR_FILE).write_bytes(evil.read_bytes())
    assert C.find_latest(work) is None
    assert not sentinel.exists()


def test_mmcv_pth_with_numpy_meta_needs_opt_in(tmp_path):
    """An mmcv .pth with NumPy scalars in meta is refused with a message naming allow_numpy;
    with the opt-in it loads (still weights_only), stripping mmcv's module. prefix."""
    m = _model()
    pth = tmp_path / "epoch_12.pth"
    torch.save({"meta": {"epoch": 12, "hook_msgs": {"best_score": np.float64(0.93)}},
                "state_dict": {f"module.{k}": v for k, v in m.state_dict().items()}}, pth)
    target = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    with pytest.raises(C.NotACheckpointError, match="allow_numpy=True"):
        C.load_weights(target, pth)
    C.load_weights(target, pth, allow_numpy=True, strict=True)
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), m.state_dict().values(), strict=True))


def test_hostile_safetensors_headers_are_rejected(tmp_path):
    """A tensor file with a huge header length, overlapping offsets or a wrong byte count is
    refused by the reader with CorruptCheckpointError (checked after a matching manifest)."""
    import json
    import struct

    def build(header: dict, data: bytes) -> bytes:
        h = json.dumps(header).encode()
        return struct.pack("<Q", len(h)) + h + data

    cases = [
        struct.pack("<Q", 10**12) + b"{}",
        build({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
               "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
        build({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
        build({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
        build({"a": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
        build({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8),
        b"[" * 100_000,
    ]
    for raw in cases:
        with pytest.raises(C.CorruptCheckpointError):
            C._read_safetensors(raw, tmp_path / "t.safetensors")


# --------------------------------------------------------------------------- the hook


def test_hook_retention_and_stale_temporaries(tmp_path):
    """max_keep_ckpts keeps the newest n of the hook's kind; stale *.tmp-* directories from an
    interrupted save are removed when the run starts and never loaded."""
    stale = tmp_path / "epoch_9.tmp-0123abcd"
    stale.mkdir(parents=True)
    (stale / "manifest.json").write_text("{}")
    table = compile_workflow([("train", 1)], max_epochs=5)
    run(TrainState(), table, data_loaders=[CountingLoader(3)], train_step=noop_step, val_step=noop_step,
        hooks=[checkpoint_hook(1, max_keep_ckpts=2)], work_dir=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["epoch_4", "epoch_5", "latest"]
    assert C.load_checkpoint(tmp_path / "latest").state.epoch == 5


def test_iter_checkpoint_stores_completed_iterations(tmp_path):
    """iter_<n> holds state.iter == n (mmcv stored n - 1 and re-ran one iteration)."""
    table = compile_workflow([("train", 1)], max_iters=6)
    run(TrainState(), table, data_loaders=[CountingLoader(4)], train_step=noop_step, val_step=noop_step,
        hooks=[checkpoint_hook(3)], work_dir=tmp_path)
    ck = C.load_checkpoint(tmp_path / "iter_3")
    assert ck.state.iter == 3 and ck.data == {"kind": "iter", "loaders": [[0, 3]]}
    assert C.load_checkpoint(tmp_path / "latest").path.name == "iter_6"
