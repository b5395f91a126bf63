"""Damaged checkpoints are refused or skipped loudly, and failed writes leave older checkpoints as they were.

Every damage case below is generated from a pristine work dir: the newest checkpoint is edited
(``state.json`` semantics, safetensors headers, truncations, the manifest) and, where the edit
would otherwise fail a checksum, the manifest is recomputed so that only the meaning is wrong.
For each one, ``resume="auto"`` falls back to the previous checkpoint with a warning naming the
damaged checkpoint, and ``resume=<the damaged checkpoint>`` raises a ``CheckpointError``; no
other exception type escapes and the older checkpoints stay byte-identical. Then the writer is
made to fail (disk full, file too large, read-only directories) during saves and retention.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import json
import logging
import os
import random
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsm_trainer import TrainState, compile_workflow, rng, run
from fsm_trainer import checkpoint as C
from fsm_trainer.hooks import checkpoint_hook, optimizer_hook, text_logger_hook

KINDS = {
    # newest, previous, the workflow, the loaders' lengths
    "epoch": ("iter_8", "iter_6", compile_workflow([("train", 1)], max_epochs=2), (4,)),
    "iter": ("iter_6", "iter_4", compile_workflow([("train", 2), ("val", 1)], max_iters=6), (3, 2)),
}
Edit = Callable[[Path], None]


def _batches(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(2, 3, generator=g), torch.randn(2, 2, generator=g)) for _ in range(n)]


def _run(kind: str, work: Path, *, resume: Any = None, keep: int = -1) -> TrainState:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    table, lengths = KINDS[kind][2], KINDS[kind][3]
    ckpt = (checkpoint_hook(3, by_epoch=False, max_keep_ckpts=keep, preempt=False) if kind == "epoch"
            else checkpoint_hook(2, max_keep_ckpts=keep, preempt=False))
    return run(TrainState(), table, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
               data_loaders=[_batches(n, i) for i, n in enumerate(lengths)], loss_fn=torch.nn.functional.mse_loss,
               hooks=[optimizer_hook(), text_logger_hook(interval=2), ckpt], work_dir=work, resume=resume)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for kind in KINDS:
        work = tmp_path_factory.mktemp(f"pristine-{kind}")
        _run(kind, work)
        newest, previous = KINDS[kind][:2]
        assert C.load_checkpoint(work / "latest").path.name == newest and (work / previous).is_dir()
        out[kind] = work
    return out


def _copy(pristine: Path, dst: Path) -> Path:
    shutil.copytree(pristine, dst)
    return dst


def _digests(work: Path, skip: str = "") -> dict[str, str]:
    """XXH3 of every file of every checkpoint in ``work`` but ``skip``, and of ``latest``."""
    out = {}
    for p in sorted(work.rglob("*")):
        rel = p.relative_to(work)
        if p.is_file() and (rel.parts[0] == "latest" or (rel.parts[0].startswith("iter_") and rel.parts[0] != skip)):
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# --------------------------------------------------------------------------- editing checkpoints


def _rehash(ck: Path, *, sync_order: bool = True) -> None:
    """Make the manifest match the files as they are now (and its order the state's position)."""
    manifest = json.loads((ck / C.MANIFEST).read_bytes())
    for fname in (C.STATE_FILE, C.TENSOR_FILE):
        raw = (ck / fname).read_bytes()
        manifest["files"][fname] = {"bytes": len(raw), "xxh3_128": xxhash.xxh3_128(raw).hexdigest()}
    if sync_order:
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError, RecursionError):
            s = json.loads((ck / C.STATE_FILE).read_bytes())["state"]
            pos = [s["iter"], s["epoch"], s["inner_iter"]]
            if all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**63 for x in pos):
                manifest["order"][:3] = pos
    body = {k: v for k, v in manifest.items() if k != "xxh3_128"}
    manifest["xxh3_128"] = xxhash.xxh3_128(C._canonical(body)).hexdigest()
    (ck / C.MANIFEST).write_bytes(C._canonical(manifest))


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def _state_edit(path: tuple[Any, ...], value: Any = None, *, delete: bool = False) -> Edit:
    """Set (or delete) ``path`` of ``state.json``'s payload, then recompute the manifest."""

    def edit(ck: Path) -> None:
        payload = json.loads((ck / C.STATE_FILE).read_bytes())
        parent = _get(payload, path[:-1])
        if delete:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value(parent[path[-1]]) if callable(value) else value
        (ck / C.STATE_FILE).write_bytes(json.dumps(payload, separators=(",", ":"), allow_nan=True).encode())
        _rehash(ck)

    return edit


def _raw_state_edit(fn: Callable[[bytes], bytes]) -> Edit:
    def edit(ck: Path) -> None:
        (ck / C.STATE_FILE).write_bytes(fn((ck / C.STATE_FILE).read_bytes()))
        _rehash(ck)

    return edit


def _header_edit(fn: Callable[[dict[str, Any]], None]) -> Edit:
    """Edit the safetensors header (the data bytes stay), then recompute the manifest."""

    def edit(ck: Path) -> None:
        raw = (ck / C.TENSOR_FILE).read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        header, data = json.loads(raw[8 : 8 + n]), raw[8 + n :]
        fn(header)
        head = json.dumps(header, separators=(",", ":")).encode()
        head += b" " * (-len(head) % 8)
        (ck / C.TENSOR_FILE).write_bytes(struct.pack("<Q", len(head)) + head + data)
        _rehash(ck)

    return edit


def _entry(name: str, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def fn(header: dict[str, Any]) -> None:
        header[name].update(changes)

    return fn


def _edits(*edits: Edit) -> Edit:
    def edit(ck: Path) -> None:
        for e in edits:
            e(ck)

    return edit


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


BAD_TYPES: list[Any] = ["x", None, 1.5, True, [], {}]


def damage_cases(kind: str, payload: dict[str, Any]) -> list[tuple[str, Edit]]:
    """Every damage of the newest checkpoint of a ``kind`` run that must be refused, generated
    from its pristine ``state.json`` payload."""
    table = KINDS[kind][2]
    s, n_entries = payload["state"], len(table.workflow)
    count = table.workflow[s["phase"]][1]
    cases: list[tuple[str, Edit]] = []

    def add(label: str, edit: Edit) -> None:
        cases.append((label, edit))

    # Wrong types, negative and huge counters, out-of-range positions (only what cannot be a position).
    for field in ("epoch", "iter", "inner_iter", "phase", "phase_done"):
        for v in [*BAD_TYPES, -3, 2**63, 10**30]:
            add(f"state.{field}={v!r:.12}", _state_edit(("state", field), v))
    limit = table.max_progress
    progress = "epoch" if table.by == "epoch" else "iter"
    add(f"state.{progress} past the maximum", _state_edit(("state", progress), limit + 1))
    add("state.phase past the workflow", _state_edit(("state", "phase"), n_entries))
    add("state.phase_done = the entry's count", _state_edit(("state", "phase_done"), count))
    add("state at the end before the maximum", _edits(_state_edit(("state", "phase"), -2),
                                                      _state_edit(("state", progress), limit - 1)))
    add("state.inner_iter beyond the data", _state_edit(("state", "inner_iter"), 10**6))
    for field, v in [("mode", "test"), ("mode", 3), ("stop", "yes"), ("stop", 1), ("outputs", 5),
                     ("hook_states", [])]:
        add(f"state.{field}={v!r}", _state_edit(("state", field), v))
    for key in s:
        add(f"state without {key}", _state_edit(("state", key), delete=True))
    add("state with an unknown key", _state_edit(("state", "extra"), 1))
    for key in payload:
        add(f"state.json without {key}", _state_edit((key,), delete=True))
    add("state.json with an unknown key", _state_edit(("extra",), {}))
    # The table.
    for key in payload["table"]:
        add(f"table without {key}", _state_edit(("table", key), delete=True))
    add("table.workflow count changed", _state_edit(("table", "workflow", 0, 1), 5))
    add("table.workflow mode changed", _state_edit(("table", "workflow", 0, 0), "test"))
    add("table.by changed", _state_edit(("table", "by"), "iter" if table.by == "epoch" else "epoch"))
    limit_key = "max_epochs" if table.by == "epoch" else "max_iters"
    for v in ["3", 10**30, -1, None]:
        add(f"table.{limit_key}={v!r}", _state_edit(("table", limit_key), v))
    add("table.rows emptied", _state_edit(("table", "rows"), []))
    add("table.rows[0].target changed", _state_edit(("table", "rows", 0, "target"), 7))
    # The data position.
    data = payload["data"]
    add("data.kind unknown", _state_edit(("data", "kind"), "x"))
    add("data without kind", _state_edit(("data", "kind"), delete=True))
    add("data.world_size=0", _state_edit(("data", "world_size"), 0))
    add("data with an unknown key", _state_edit(("data", "extra"), 1))
    add("data is a list", _state_edit(("data",), []))
    if data["kind"] == "epoch":
        add("data.batches differs from the state", _state_edit(("data", "batches"), lambda b: b + 1))
        add("data.epoch is a string", _state_edit(("data", "epoch"), "1"))
    else:
        add("data.loaders index beyond the loader", _state_edit(("data", "loaders", 0, 1), 99))
        add("data.loaders one too few", _state_edit(("data", "loaders"), lambda ls: ls[:-1]))
        add("data.loaders pair too short", _state_edit(("data", "loaders", 0), [0]))
        add("data.loaders negative pass", _state_edit(("data", "loaders", 0, 0), -1))
    # RNG states.
    add("rng is a list", _state_edit(("rng",), []))
    for key in payload["rng"]:
        add(f"rng without {key}", _state_edit(("rng", key), delete=True))
    add("rng.python.state one word short", _state_edit(("rng", "python", "state"), lambda w: w[:-1]))
    add("rng.python.state word too large", _state_edit(("rng", "python", "state", 0), 2**32))
    add("rng.python.state position too large", _state_edit(("rng", "python", "state", -1), 625))
    add("rng.python.version", _state_edit(("rng", "python", "version"), 2))
    add("rng.numpy.pos too large", _state_edit(("rng", "numpy", "pos"), 625))
    add("rng.numpy.keys one short", _state_edit(("rng", "numpy", "keys"), lambda k: k[:-1]))
    add("rng.numpy.kind", _state_edit(("rng", "numpy", "kind"), "PCG64"))
    add("rng.torch is a model tensor", _state_edit(("rng", "torch"), {"__tensor__": "model/0.weight"}))
    add("rng.torch is a number", _state_edit(("rng", "torch"), 5))
    add("rng.cuda is a string", _state_edit(("rng", "cuda"), "x"))
    # The log buffer.
    buf = payload["log_buffer"]
    add("log_buffer is a number", _state_edit(("log_buffer",), 3))
    for key in buf:
        add(f"log_buffer without {key}", _state_edit(("log_buffer", key), delete=True))
    add("log_buffer.ready is a string", _state_edit(("log_buffer", "ready"), "x"))
    add("log_buffer.values is a list", _state_edit(("log_buffer", "values"), []))
    add("log_buffer.output holds a string", _state_edit(("log_buffer", "output"), {"loss": "x"}))
    if buf["counts"]:
        key = next(iter(buf["counts"]))
        add("log_buffer.counts shorter than values",
            _state_edit(("log_buffer", "counts", key), lambda c: c[:-1] or [1, 1]))
        add("log_buffer.values holds a string",
            _state_edit(("log_buffer", "values", key), ["x"] * len(buf["values"][key])))
    # The optimizer state.
    group = ("optimizer", "param_groups", 0)
    add("optimizer lr is a string", _state_edit((*group, "lr"), "x"))
    add("optimizer momentum is null", _state_edit((*group, "momentum"), None))
    add("optimizer without lr", _state_edit((*group, "lr"), delete=True))
    add("optimizer nesterov is a string", _state_edit((*group, "nesterov"), "x"))
    add("optimizer group one param short", _state_edit((*group, "params"), lambda p: p[:-1]))
    add("optimizer group lists a param twice", _state_edit((*group, "params"), lambda p: [p[0], *p[:-1]]))
    add("optimizer has no groups", _state_edit(("optimizer", "param_groups"), []))
    add("optimizer without state", _state_edit(("optimizer", "state"), delete=True))
    add("optimizer is a string", _state_edit(("optimizer",), "x"))
    add("optimizer state of an unknown param", _state_edit(("optimizer", "state", "__dict__", 0, 0), 99))
    add("optimizer momentum buffer of another shape",
        _state_edit(("optimizer", "state", "__dict__", 0, 1, "momentum_buffer"), {"__tensor__": "model/0.bias"}))
    # The model.
    add("model weight refers to another tensor", _state_edit(("model", "0.weight"), {"__tensor__": "model/0.bias"}))
    add("model weight is a number", _state_edit(("model", "0.weight"), 3))
    add("model without a bias", _state_edit(("model", "0.bias"), delete=True))
    add("model with an unknown key", _state_edit(("model", "9.weight"), {"__tensor__": "model/0.bias"}))
    add("model refers to a missing tensor", _state_edit(("model", "0.weight"), {"__tensor__": "nope"}))
    add("model with an unknown tag", _state_edit(("model", "0.weight"), {"__evil__": 1}))
    add("model with a bad ndarray", _state_edit(("model", "0.weight"), {"__ndarray__": 5}))
    # Deep nesting and huge numbers.
    add("meta nested 70 deep", _state_edit(("meta", "config"), _nested(70)))
    add("outputs nested 70 deep", _state_edit(("state", "outputs"), {"x": _nested(70)}))
    add("state.json nested 3000 deep",
        _raw_state_edit(lambda b: b[:-1] + b',"deep":' + b"[" * 3000 + b"]" * 3000 + b"}"))
    add("state.epoch with 5000 digits", _raw_state_edit(
        lambda b: b.replace(b'"epoch":' + str(s["epoch"]).encode(), b'"epoch":' + b"9" * 5000, 1)))
    add("state.json with a duplicate key", _raw_state_edit(lambda b: b[:-1] + b',"meta":{}}'))
    # Safetensors headers.
    w, m = "model/0.weight", "optimizer/state/0/momentum_buffer"
    add("weight F32 -> I32", _header_edit(_entry(w, dtype="I32")))
    add("weight F32 -> F16", _header_edit(_entry(w, dtype="F16")))
    add("weight shape transposed", _header_edit(_entry(w, shape=[3, 4])))
    add("weight shape flattened", _header_edit(_entry(w, shape=[12])))
    add("momentum buffer flattened", _header_edit(_entry(m, shape=[12])))
    add("momentum buffer F32 -> I32", _header_edit(_entry(m, dtype="I32")))
    add("rng.torch U8 -> I8", _header_edit(_entry("rng/torch", dtype="I8")))
    add("rng.torch reshaped", _header_edit(_entry("rng/torch", shape=[2, 2528])))
    add("weight dtype unknown", _header_edit(_entry(w, dtype="Q99")))

    def extra(shape: list[int]) -> Callable[[dict[str, Any]], None]:
        def fn(header: dict[str, Any]) -> None:
            end = max(e["data_offsets"][1] for k, e in header.items() if k != "__metadata__")
            header["zzz"] = {"dtype": "F32", "shape": shape, "data_offsets": [end, end]}

        return fn

    add("empty tensor of shape [0, 2**70]", _header_edit(extra([0, 2**70])))
    add("empty tensor of shape [0, 2**40, 2**40]", _header_edit(extra([0, 2**40, 2**40])))
    add("empty tensor with 65 dims", _header_edit(extra([0] * 65)))
    # Truncations and the manifest.
    rnd = random.Random(f"truncate-{kind}")

    def truncate(fname: str, rehash: bool) -> Edit:
        def edit(ck: Path) -> None:
            raw = (ck / fname).read_bytes()
            (ck / fname).write_bytes(raw[: rnd.randrange(len(raw))])
            if rehash:
                _rehash(ck, sync_order=False)

        return edit

    for fname in (C.TENSOR_FILE, C.STATE_FILE):
        add(f"{fname} truncated", truncate(fname, False))
        add(f"{fname} truncated, manifest recomputed", truncate(fname, True))
    add("manifest truncated", truncate(C.MANIFEST, False))
    add("manifest emptied", lambda ck: (ck / C.MANIFEST).write_bytes(b""))
    add("manifest deleted", lambda ck: (ck / C.MANIFEST).unlink())
    add("tensor file deleted", lambda ck: (ck / C.TENSOR_FILE).unlink())

    def manifest_order(order: Any) -> Edit:
        def edit(ck: Path) -> None:
            manifest = json.loads((ck / C.MANIFEST).read_bytes())
            manifest["order"] = order
            body = {k: v for k, v in manifest.items() if k != "xxh3_128"}
            manifest["xxh3_128"] = xxhash.xxh3_128(C._canonical(body)).hexdigest()
            (ck / C.MANIFEST).write_bytes(C._canonical(manifest))

        return edit

    add("manifest order beyond int64", manifest_order([2**70, 0, 0, 0]))
    add("manifest order ahead of the state", manifest_order([10**6, 10**6, 0, 0]))
    add("manifest order of strings", manifest_order(["9", "9"]))
    return cases


def _payload(work: Path, name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((work / name / C.STATE_FILE).read_bytes())
    return payload


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_damage_falls_back_with_a_warning_or_is_an_error(pristine, tmp_path, caplog, kind):
    """For each generated damage of the newest checkpoint: ``resume="auto"`` resumes from the
    previous one and a warning names the damaged checkpoint; ``resume=<it>`` raises a
    CheckpointError (and nothing else); the older checkpoints are byte-identical."""
    newest, previous = KINDS[kind][:2]
    cases = damage_cases(kind, _payload(pristine[kind], newest))
    assert len(cases) > 100
    failures = []
    for i, (label, edit) in enumerate(cases):
        work = _copy(pristine[kind], tmp_path / f"{i}")
        edit(work / newest)
        before = _digests(work, skip=newest)
        caplog.clear()
        try:
            with pytest.raises(C.CheckpointError):
                _run(kind, tmp_path / f"{i}-explicit", resume=work / newest)
            with caplog.at_level(logging.INFO, logger="fsm_trainer"):
                _run(kind, work, resume="auto")
        except BaseException as exc:
            failures.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resumed from")]
        if not any(str(work / newest) in m and "skipping invalid checkpoint" in m for m in warned):
            failures.append(f"{label}: no warning naming {newest}: {warned}")
        elif not resumed or not resumed[0].startswith(f"resumed from {work / previous}:"):
            failures.append(f"{label}: resumed {resumed}")
        after = {k: v for k, v in _digests(work, skip=newest).items() if k != "latest"}
        if after != {k: v for k, v in before.items() if k != "latest"}:
            failures.append(f"{label}: an older checkpoint changed")
        shutil.rmtree(work)
    assert not failures, "\n".join(failures)


def test_a_damaged_latest_pointer_target_falls_back_but_a_named_file_never_does(pristine, tmp_path, caplog):
    """``resume=<work>/latest`` naming a damaged checkpoint takes the newest valid one (the
    pointer is advisory); a text file naming an existing checkpoint is not a pointer: an error."""
    work = _copy(pristine["epoch"], tmp_path / "w")
    _state_edit(("state", "inner_iter"), 10**6)(work / "iter_8")
    with caplog.at_level(logging.INFO, logger="fsm_trainer"):
        _run("epoch", work, resume=work / "latest")
    assert f"resumed from {work / 'iter_6'}:" in caplog.text
    notes = tmp_path / "w" / "notes.txt"
    notes.write_text("iter_6\n")
    with pytest.raises(C.NotACheckpointError, match="not an fsm_trainer checkpoint"):
        _run("epoch", tmp_path / "other", resume=notes)


def test_auto_resume_raises_when_no_checkpoint_fits_the_model(pristine, tmp_path):
    """Every checkpoint of another model: "auto" does not silently start afresh, it raises the
    newest checkpoint's mismatch."""
    work = _copy(pristine["epoch"], tmp_path / "w")
    for p in work.glob("iter_*"):
        _header_edit(_entry("model/0.weight", dtype="I32"))(p)
    with pytest.raises(C.CheckpointMismatchError, match=r"iter_8.*dtype differs"):
        _run("epoch", work, resume="auto")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_state_edits_load_or_raise_checkpoint_errors(pristine, data):
    """Random edits of any value of ``state.json`` (checksums recomputed): loading and the run's
    fit check either accept the checkpoint or raise a CheckpointError, never anything else."""
    import tempfile

    kind = data.draw(st.sampled_from(sorted(KINDS)))
    newest = KINDS[kind][0]
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / newest
        shutil.copytree(pristine[kind] / newest, ck)
        payload = _payload(ck.parent, newest)
        paths: list[tuple[Any, ...]] = []

        def walk(obj: Any, at: tuple[Any, ...]) -> None:
            paths.append(at)
            items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
            for k, v in items:
                if not (isinstance(obj, list) and k > 3):
                    walk(v, (*at, k))

        walk(payload, ())
        path = data.draw(st.sampled_from(paths[1:]))
        leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=3)
        value = data.draw(leaf | st.lists(leaf, max_size=3) | st.dictionaries(st.text(max_size=3), leaf, max_size=2))
        _state_edit(path, value)(ck)
        try:
            loaded = C.load_checkpoint(ck)
        except C.CheckpointError:
            return
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
        from fsm_trainer.context import RunContext

        lengths = KINDS[kind][3]
        ctx = RunContext(KINDS[kind][2], [_batches(n, 0) for n in lengths], model,
                         torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        try:
            C.fits_run(ctx)(loaded)
        except C.CheckpointError:
            return
        C.load_model_state(model, loaded.model)
        if loaded.optimizer is not None:
            C.load_optimizer_state(model, ctx.optimizer, loaded.optimizer)
        saved_rng = rng.capture()
        try:
            rng.restore(loaded.rng) if loaded.rng is not None else None
        finally:
            rng.restore(saved_rng)


# --------------------------------------------------------------------------- failing writes


@contextlib.contextmanager
def _failing_open(work: Path, target: str, code: int, after: int = 16) -> Iterator[None]:
    """Files created under ``work`` whose name contains ``target`` raise ``code`` once ``after`` bytes are written."""
    real_open = builtins.open

    class Failing:
        def __init__(self, f: Any) -> None:
            self.f, self.n = f, 0

        def write(self, b: Any) -> int:
            self.n += len(memoryview(b).cast("B"))
            if self.n > after:
                raise OSError(code, os.strerror(code))
            return int(self.f.write(b))

        def __getattr__(self, name: str) -> Any:
            return getattr(self.f, name)

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.f.close()

    def fake(path: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
        f = real_open(path, mode, *a, **k)
        p = str(path)
        if "x" in mode and p.startswith(str(work)) and target in os.path.basename(p):
            return Failing(f)
        return f

    builtins.open = fake
    try:
        yield
    finally:
        builtins.open = real_open


@contextlib.contextmanager
def _patched(module: Any, name: str, fail: Callable[..., bool], code: int) -> Iterator[None]:
    real = getattr(module, name)

    def fake(*args: Any, **kwargs: Any) -> Any:
        if fail(*args):
            raise OSError(code, os.strerror(code), str(args[0]))
        return real(*args, **kwargs)

    setattr(module, name, fake)
    try:
        yield
    finally:
        setattr(module, name, real)


def _write_faults(work: Path) -> list[tuple[str, Any, int, bool]]:
    """(label, context manager, errno, committed): ways the save of iter_8 fails."""
    cases: list[tuple[str, Any, int, bool]] = []
    for code in (errno.ENOSPC, errno.EFBIG):
        for target in (C.TENSOR_FILE, C.STATE_FILE, C.MANIFEST, "latest.tmp-"):
            latest = target.startswith("latest")
            cases.append((f"{errno.errorcode[code]} writing {target}",
                          _failing_open(work, target, code, after=0 if latest else 16), code, latest))
    cases.append(("ENOSPC at fsync", _patched(os, "fsync", lambda fd: True, errno.ENOSPC), errno.ENOSPC, False))
    cases.append(("EACCES creating the temporary directory",
                  _patched(os, "mkdir", lambda p, *a: ".tmp-" in str(p), errno.EACCES), errno.EACCES, False))
    cases.append(("EROFS renaming into place",
                  _patched(os, "replace", lambda s, *a: ".tmp-" in str(s) and "latest" not in str(s), errno.EROFS),
                  errno.EROFS, False))
    return cases


def test_failed_saves_raise_checkpoint_write_errors_and_keep_older_checkpoints(pristine, tmp_path):
    """Disk full, file too large, a read-only directory, at each file of a save: the run stops
    with a CheckpointWriteError naming the checkpoint; older checkpoints and ``latest`` are
    byte-identical and no temporary is left."""
    failures = []
    for i, (label, ctx, code, committed) in enumerate(_write_faults(tmp_path / "w")):
        work = _copy(pristine["epoch"], tmp_path / "w")
        shutil.rmtree(work / "iter_8")
        C.write_latest(work, "iter_6")
        before = _digests(work)
        try:
            with ctx, pytest.raises(C.CheckpointWriteError) as info:
                _run("epoch", work, resume=work / "iter_6")
            assert info.value.errno == code and "iter_8" in str(info.value), str(info.value)
            assert _digests(work, skip="iter_8") == before
            assert (work / "iter_8").is_dir() == committed
            assert not [p.name for p in work.iterdir() if ".tmp-" in p.name]
        except BaseException as exc:
            failures.append(f"{i} {label}: {type(exc).__name__}: {exc}")
        shutil.rmtree(work)
    assert not failures, "\n".join(failures)


def _read_only(path: Path) -> bool:
    """Make ``path`` read-only; False when that has no effect (root)."""
    path.chmod(0o555)
    if os.access(path, os.W_OK):
        path.chmod(0o755)
        return False
    return True


@pytest.mark.parametrize("what", ["work dir", "old checkpoint"])
def test_retention_that_cannot_remove_warns_and_the_run_goes_on(pristine, tmp_path, caplog, what):
    """max_keep_ckpts=1 where the old checkpoints cannot be removed (their directory or
    themselves read-only): a warning per checkpoint, the run ends normally, and they are
    byte-identical."""
    work = _copy(pristine["epoch"], tmp_path / "w")
    shutil.rmtree(work / "iter_8")
    before = _digests(work, skip="iter_8")
    olds = [work / "iter_3", work / "iter_6"]
    with contextlib.ExitStack() as stack:
        if what == "old checkpoint":
            if all(_read_only(p) for p in olds):
                stack.callback(lambda: [p.chmod(0o755) for p in work.glob("iter_*")])
            else:
                stack.enter_context(_patched(os, "unlink", lambda p, *a: ".deleting-" in str(p), errno.EACCES))
        else:
            stack.enter_context(_patched(os, "replace", lambda s, d, *a: ".deleting-" in str(d), errno.EROFS))
        with caplog.at_level(logging.WARNING, logger="fsm_trainer"):
            final = _run("epoch", work, resume=work / "iter_6", keep=1)
    assert final.iter == 8 and C.load_checkpoint(work / "latest").path.name == "iter_8"
    for old in olds:
        assert f"could not remove checkpoint {old}" in caplog.text
    assert _digests(work, skip="iter_8") == {k: v for k, v in before.items() if k != "latest"} | {
        "latest": hashlib.sha256(b"iter_8\n").hexdigest()}


def test_cleanup_in_a_read_only_directory_warns_and_keeps_everything(tmp_path, caplog, monkeypatch):
    """Leftovers that cannot be removed, and a displaced checkpoint that cannot be moved back,
    are warnings; the displaced checkpoint stays readable."""
    table = compile_workflow([("train", 1)], max_epochs=2)
    C.save_checkpoint(tmp_path, "epoch_1", state=TrainState(epoch=1, phase=0, mode="train"), table=table)
    os.replace(tmp_path / "epoch_1", tmp_path / "epoch_1.old-0123abcd")
    (tmp_path / "epoch_2.tmp-89abcdef").mkdir()
    (tmp_path / "epoch_2.tmp-89abcdef" / "x").write_bytes(b"x")
    real_replace, real_rmtree = os.replace, shutil.rmtree

    def replace(src: Any, dst: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(src))

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "rmtree", lambda p, ignore_errors=False: None)
    with caplog.at_level(logging.WARNING, logger="fsm_trainer"):
        assert C.cleanup_stale(tmp_path) == []
    monkeypatch.setattr(os, "replace", real_replace)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    assert "could not restore checkpoint" in caplog.text and "could not remove" in caplog.text
    assert C.load_checkpoint(tmp_path / "epoch_1").state.epoch == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.old-0123abcd", "epoch_2.tmp-89abcdef", "latest"]


def test_remove_checkpoint_strict_raises_a_write_error_naming_the_path(tmp_path, monkeypatch):
    path = C.save_checkpoint(tmp_path, "epoch_1", state=TrainState(), table=compile_workflow([("train", 1)],
                                                                                              max_epochs=1))

    def replace(src: Any, dst: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(src))

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(C.CheckpointWriteError, match=r"epoch_1.*Read-only") as info:
        C.remove_checkpoint(path, strict=True)
    assert info.value.errno == errno.EROFS and isinstance(info.value.__cause__, OSError)
    assert C.remove_checkpoint(path) is False
    monkeypatch.undo()
    assert C.remove_checkpoint(path) is True and not path.exists()


@pytest.mark.slow  # a fresh interpreter (without torch: quick)
def test_discovery_imports_without_torch():
    """Listing checkpoints, following ``latest`` and retention need no torch."""
    code = ("import sys\nimport fsm_trainer.checkpoint._discovery as d\nfrom fsm_trainer.checkpoint import "
            "list_checkpoints, to_remove, cleanup_stale, CheckpointError, LATEST\n"
            "assert d.to_remove(['epoch_1', 'epoch_2'], 1, 'epoch_') == ['epoch_1']\n"
            "print('torch' in sys.modules)\n")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
