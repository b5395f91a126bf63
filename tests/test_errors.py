"""The error rule of fsm_trainer.errors: every error is an FsmTrainerError that keeps its builtin
base, no module raises a bare builtin for bad input, and errors caused by I/O or decoding keep
that cause."""

from __future__ import annotations

import ast
import builtins
import errno
import importlib
import inspect
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import fsm_trainer
from fsm_trainer import TrainState, compile_workflow, dist, errors, hooks, metrics, optim, rng, run, sampler, schedules
from fsm_trainer import checkpoint as C
from fsm_trainer import step as steps
from fsm_trainer.config import builtins as config_builtins
from fsm_trainer.errors import (
    ArgumentTypeError,
    DataError,
    DistError,
    FsmTrainerError,
    HookError,
    MappingKeyError,
    MetricError,
    ProcessGroupError,
    RngStateError,
    ScheduleConfigError,
)
from fsm_trainer.hook import Hook
from fsm_trainer.registry import Registry
from fsm_trainer.testing import CountingLoader, noop_step

PACKAGE = Path(fsm_trainer.__file__).parent
ROOT = PACKAGE.parent

_MMCV = "fsm_trainer/mmcv/"
"""fsm_trainer.mmcv reproduces the exception types of mmcv 1.7.2's API (KeyError from a registry,
NotImplementedError, AttributeError, StopIteration...); the raise scan skips it."""

_BUILTIN_PROTOCOLS = {
    "AttributeError": "a module's __getattr__ must raise it for a name it does not have",
    "ImportError": "an optional package is missing: the error Python gives, with what to install",
    "NotImplementedError": "a method a subclass must provide",
    "StopIteration": "the iterator protocol",
    "SystemExit": "the exit status of the command line",
    "KeyboardInterrupt": "an interruption passed on",
}
"""Builtin exceptions that are a Python protocol rather than a report of bad input."""

_INTERNAL_SIGNALS = {
    ("fsm_trainer/config/schema.py", "structure_literal", "ValueError"):
        "a cattrs structure hook: cattrs collects the error with its key path, and structure_config() raises one "
        "ConfigError listing every path (check_type() returns the problems)",
}
"""(module, function, builtin) raises that never leave fsm_trainer: the package turns them into its own."""

_NOT_ERRORS = {
    "fsm_trainer.hook.UnreachableHookWarning": "a warning category for warnings.warn, never raised",
}
"""BaseException subclasses of fsm_trainer that are not errors, with why."""

_BUILTIN_EXCEPTIONS = {
    name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)
}


def _modules() -> Iterator[tuple[str, str, ast.Module]]:
    """``(relative path, module name, syntax tree)`` of every module of fsm_trainer."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        name = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        yield rel, name, ast.parse(path.read_text(encoding="utf-8"), rel)


def _builtin_raises(tree: ast.Module) -> Iterator[tuple[str, str, int]]:
    """``(enclosing function, builtin exception name, line)`` of each ``raise <Builtin>[(...)]``."""

    def visit(node: ast.AST, function: str) -> Iterator[tuple[str, str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from visit(child, child.name)
                continue
            if isinstance(child, ast.Raise) and child.exc is not None:
                exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                if isinstance(exc, ast.Name) and exc.id in _BUILTIN_EXCEPTIONS:
                    yield function, exc.id, child.lineno
            yield from visit(child, function)

    yield from visit(tree, "<module>")


def _scanned_raises() -> list[tuple[str, str, str, int]]:
    found = []
    for rel, _, tree in _modules():
        if rel.startswith(_MMCV):
            continue
        found.extend((rel, fn, exc, line) for fn, exc, line in _builtin_raises(tree))
    return found


# --------------------------------------------------------------------------- (a) no bare builtin raises


def test_no_module_raises_a_bare_builtin_for_bad_input():
    """Outside fsm_trainer.mmcv, no raise of ValueError, TypeError, KeyError, RuntimeError (or any
    builtin but a protocol one) remains, except the listed internal signals."""
    bad = [f"{rel}:{line} raise {exc} (in {fn})" for rel, fn, exc, line in _scanned_raises()
           if exc not in _BUILTIN_PROTOCOLS and (rel, fn, exc) not in _INTERNAL_SIGNALS]
    assert not bad, "raise an fsm_trainer.errors class instead:\n" + "\n".join(bad)


def test_the_scan_finds_builtin_raises_and_the_whitelist_is_current():
    """The scan sees a builtin raise in a function, and every whitelisted internal signal still exists."""
    tree = ast.parse("def f(x):\n    if x:\n        raise ValueError('no')\n    raise KeyError\n")
    assert list(_builtin_raises(tree)) == [("f", "ValueError", 3), ("f", "KeyError", 4)]
    seen = {(rel, fn, exc) for rel, fn, exc, _ in _scanned_raises()}
    assert set(_INTERNAL_SIGNALS) <= seen


def test_the_skip_lists_name_real_modules():
    """The skip lists name real modules, so a renamed module is scanned rather than silently skipped."""
    rels = {rel for rel, _, _ in _modules()}
    assert any(rel.startswith(_MMCV) for rel in rels)


# --------------------------------------------------------------------------- (b) one hierarchy


def _exception_classes() -> Iterator[tuple[str, type[BaseException]]]:
    """Every BaseException subclass defined at the top level of a module of fsm_trainer."""
    for _, name, tree in _modules():
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        if not classes:
            continue
        module = importlib.import_module(name)
        for cls_name in classes:
            cls = getattr(module, cls_name)
            if inspect.isclass(cls) and issubclass(cls, BaseException):
                yield f"{name}.{cls_name}", cls


def test_every_exception_class_of_the_package_is_an_fsm_trainer_error():
    """Each exception class anywhere in fsm_trainer derives from FsmTrainerError, except listed non-errors."""
    found = dict(_exception_classes())
    assert "fsm_trainer.checkpoint._errors.CheckpointError" in found and "fsm_trainer.optim.OptimizerConfigError" in found
    outside = sorted(n for n, cls in found.items() if not issubclass(cls, FsmTrainerError) and n not in _NOT_ERRORS)
    assert not outside, f"not derived from FsmTrainerError: {outside}"
    assert set(_NOT_ERRORS) <= set(found)


def test_every_error_keeps_a_builtin_base():
    """Every FsmTrainerError subclass also derives from a builtin more specific than Exception, so
    ``except ValueError`` (TypeError, KeyError, RuntimeError, OSError...) keeps catching it."""
    generic = {Exception, BaseException, object}
    for name, cls in _exception_classes():
        if issubclass(cls, FsmTrainerError) and cls is not FsmTrainerError:
            kept = [b for b in cls.__mro__ if b.__name__ in _BUILTIN_EXCEPTIONS and b not in generic]
            assert kept, f"{name} has no builtin base besides Exception"


def test_the_errors_module_lists_each_of_its_classes():
    """The errors module docstring names each class it defines, so the hierarchy has one description."""
    doc = errors.__doc__ or ""
    for name, cls in vars(errors).items():
        if inspect.isclass(cls) and issubclass(cls, BaseException):
            assert cls.__module__ == "fsm_trainer.errors" and issubclass(cls, FsmTrainerError), name
            assert f":class:`{name}`" in doc, name


def test_area_errors_are_exported_with_their_area():
    """The new classes can be imported where their area's public names are."""
    assert fsm_trainer.ArgumentTypeError is ArgumentTypeError and fsm_trainer.MappingKeyError is MappingKeyError
    assert dist.DistError is DistError and dist.ProcessGroupError is ProcessGroupError
    assert {"DistError", "ProcessGroupError"} <= set(dist.__all__)
    assert hooks.HookError is HookError and "HookError" in hooks.__all__
    assert metrics.MetricError is MetricError and "MetricError" in metrics.__all__
    assert schedules.ScheduleConfigError is ScheduleConfigError and rng.RngStateError is RngStateError
    assert sampler.DataError is DataError


# --------------------------------------------------------------------------- (c) user-level calls


def _twice(registry: Registry) -> None:
    registry.register("f", obj=len)
    registry.register("f", obj=len)


_CASES: list[tuple[str, Callable[[], Any], type[FsmTrainerError], type[Exception], str]] = [
    ("build_lr_schedule with a misspelt key",
     lambda: schedules.build_lr_schedule(policy="step", step=[8, 11], gama=0.1),
     ScheduleConfigError, ValueError, r"unknown key\(s\) 'gama'"),
    # mmcv 1.7.2's format_param: ValueError for a list of the wrong length, KeyError for a dict of
    # optimizers without this one.
    ("OneCycle max_lr with one value too few",
     lambda: schedules.OneCycle(max_lr=(0.1, 0.2)).base_values(3, "SGD"),
     ScheduleConfigError, ValueError, r"max_lr: expected 3 values for optimizer 'SGD'"),
    ("OneCycle max_lr dict without the optimizer",
     lambda: schedules.OneCycle(max_lr={"gen": 0.1}).base_values(1, "disc"),
     MappingKeyError, KeyError, r"max_lr: no entry for optimizer 'disc'; the dict has \['gen'\]"),
    ("build_optimizer with an unknown type",
     lambda: optim.build_optimizer(torch.nn.Linear(2, 2), {"type": "SGDD", "lr": 0.1}),
     optim.OptimizerConfigError, ValueError, r"optimizer type 'SGDD' is unknown; allowed: .*SGD"),
    ("ema_hook with momentum 2",
     lambda: hooks.ema_hook(momentum=2),
     HookError, ValueError, r"EMA momentum must be in \(0, 1\), got 2"),
    ("optimizer_hook with an unknown grad_clip key",
     lambda: hooks.optimizer_hook({"max_norm": 1.0, "norm": 2}),
     HookError, ValueError, r"grad_clip: unknown keys \['norm'\]; allowed: \['error_if_nonfinite', 'foreach', "
                            r"'max_norm', 'norm_type'\]"),
    ("optimizer_hook with amp that is not an Amp",
     lambda: hooks.optimizer_hook(amp="fp16"),
     ArgumentTypeError, TypeError, r"amp must be an fsm_trainer.hooks.Amp, got str"),
    ("early_stopping_hook with patience 0",
     lambda: hooks.early_stopping_hook("accuracy", patience=0),
     HookError, ValueError, r"patience must be an int >= 1, got 0"),
    ("nan_guard_hook with an unknown action",
     lambda: hooks.nan_guard_hook(action="halt"),
     HookError, ValueError, r"action must be 'stop', 'skip' or 'raise', got 'halt'"),
    ("a second registration under a taken name",  # mmcv 1.7.2's Registry raises KeyError here too
     lambda: _twice(Registry("thing")),
     MappingKeyError, KeyError, r"^'f' is already registered in the thing registry; pass force=True"),
    ("init_dist with an unknown launcher",
     lambda: dist.init_dist("slurm"),
     DistError, ValueError, r"unknown launcher 'slurm'; allowed: 'pytorch'"),
    ("run(distributed='zero')",
     lambda: dist.check_strategy("zero"),
     DistError, ValueError, r"distributed='zero'; allowed: False, True"),
    ("wrap_model without a process group",
     lambda: dist.wrap_model(torch.nn.Linear(2, 2)),
     ProcessGroupError, RuntimeError, r"needs an initialised process group"),
    ("a sampler with no replicas",
     lambda: sampler.ResumableSampler(10, num_replicas=0),
     DataError, ValueError, r"num_replicas must be an int >= 1, got 0"),
    ("resumable_loader given its own sampler",
     lambda: sampler.resumable_loader([1, 2], sampler=None),
     ArgumentTypeError, TypeError, r"resumable_loader sets 'sampler' itself"),
    ("an RNG state with missing parts",
     lambda: rng.check({"python": {}}),
     RngStateError, ValueError, r"expected the keys cuda, numpy, python, torch; got python"),
    ("an unknown metric name",
     lambda: metrics.get_metric("f1"),
     MetricError, ValueError, r"unknown metric 'f1'"),
    ("a model without steps and no loss_fn",
     lambda: steps.make_steps(object(), None),
     ArgumentTypeError, TypeError, r"model object has no train_step/val_step"),
    ("a checkpoint name with a slash",
     lambda: C.save_checkpoint(Path("unused"), "a/b", state=TrainState(), table=compile_workflow([("train", 1)],
                                                                                               max_epochs=1)),
     C.CheckpointError, ValueError, r"checkpoint name 'a/b' must be letters, digits"),
    ("a digits dataset split that does not exist",
     lambda: config_builtins.DigitsDataset(split="test"),
     DataError, ValueError, r"split must be 'train' or 'val', got 'test'"),
]


@pytest.mark.parametrize(("what", "call", "cls", "builtin", "message"), _CASES, ids=[c[0] for c in _CASES])
def test_user_level_calls_raise_the_area_error_still_caught_as_the_builtin(what, call, cls, builtin, message):
    """The new class is raised, it is an FsmTrainerError, ``except <builtin>`` still catches it,
    and the message (printed as is, also for KeyError) names the offending value."""
    try:
        call()
    except builtin as exc:
        assert type(exc) is cls, f"{what}: {type(exc).__name__}"
        assert isinstance(exc, FsmTrainerError)
        assert re.search(message, str(exc)), str(exc)
    else:
        pytest.fail(f"{what}: nothing raised")


def test_a_mapping_key_error_prints_its_message_unquoted():
    """A builtin KeyError prints repr(message); MappingKeyError prints the message itself."""
    assert str(KeyError("no 'loss'")) == "\"no 'loss'\""
    assert str(MappingKeyError("no 'loss'")) == "no 'loss'"
    assert str(MappingKeyError("a", "b")) == "('a', 'b')"


def test_a_hook_refusing_its_saved_state_is_reported_as_a_corrupt_checkpoint(tmp_path):
    """A hook's own error when loading its saved state (here a MappingKeyError) becomes a
    CorruptCheckpointError naming the hook, with the hook's error as the cause."""
    table = compile_workflow([("train", 1)], max_epochs=2)

    def saving() -> Hook:
        return Hook("Keeper", state_dict=lambda: {"values": {"w": 1}})

    run(TrainState(), table, data_loaders=[CountingLoader(2)], train_step=noop_step, val_step=noop_step,
        hooks=[hooks.checkpoint_hook(1), saving()], work_dir=tmp_path)

    def refuse(d: dict[str, Any]) -> None:
        raise MappingKeyError(f"Keeper: no values for ['v'] in {sorted(d['values'])}")

    longer = compile_workflow([("train", 1)], max_epochs=3)
    with pytest.raises(C.CorruptCheckpointError, match=r"hook 'Keeper' cannot load its saved state: Keeper: no values") \
            as info:
        run(TrainState(), longer, data_loaders=[CountingLoader(2)], train_step=noop_step, val_step=noop_step,
            hooks=[Hook("Keeper", state_dict=lambda: {}, load_state_dict=refuse)], work_dir=tmp_path, resume="auto")
    assert isinstance(info.value.__cause__, MappingKeyError)


# --------------------------------------------------------------------------- (d) causes are kept


_ROOT_USER = os.geteuid() == 0


def _unreadable(path: Path) -> None:
    path.chmod(0)


def _save(directory: Path) -> Path:
    m = torch.nn.Linear(2, 2)
    return C.save_checkpoint(directory, "epoch_1", state=TrainState(epoch=1, iter=2, phase=0, mode="train"),
                             table=compile_workflow([("train", 1)], max_epochs=3), model=m.state_dict(),
                             rng=rng.capture())


@pytest.mark.parametrize("fname", [C.STATE_FILE, C.TENSOR_FILE, C.MANIFEST])
def test_a_checkpoint_file_that_is_a_directory_keeps_the_os_error(tmp_path, fname):
    """A directory in place of a checkpoint file: a CheckpointError naming it, caused by the OSError."""
    path = _save(tmp_path)
    (path / fname).unlink()
    (path / fname).mkdir()
    with pytest.raises(C.CheckpointError, match=rf"{re.escape(fname)}: cannot read: Is a directory") as info:
        C.load_checkpoint(path)
    assert isinstance(info.value.__cause__, IsADirectoryError)


@pytest.mark.skipif(_ROOT_USER, reason="root reads files whatever their mode")
@pytest.mark.parametrize("fname", [C.STATE_FILE, C.MANIFEST])
def test_an_unreadable_checkpoint_file_keeps_the_os_error(tmp_path, fname):
    """A file without read permission: a CheckpointError caused by the PermissionError."""
    path = _save(tmp_path)
    _unreadable(path / fname)
    try:
        with pytest.raises(C.CheckpointError, match="cannot read: Permission denied") as info:
            C.load_checkpoint(path)
    finally:
        (path / fname).chmod(0o644)
    assert isinstance(info.value.__cause__, PermissionError)


def test_an_unreadable_latest_file_keeps_the_os_error(tmp_path, monkeypatch):
    """Reading ``latest`` fails with an I/O error: a CheckpointError caused by it (not a bare OSError)."""
    _save(tmp_path)
    C.write_latest(tmp_path, "epoch_1")
    real = Path.read_text

    def failing(self: Path, *a: Any, **k: Any) -> str:
        if self.name == C.LATEST:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", failing)
    with pytest.raises(C.CheckpointError, match="latest: cannot read: Input/output error") as info:
        C.load_checkpoint(tmp_path / C.LATEST)
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.EIO


def _config(tmp_path: Path) -> Path:
    p = tmp_path / "cfg.py"
    p.write_text("model = dict(type='DigitsNet')\n")
    return p


@pytest.mark.skipif(_ROOT_USER, reason="root reads files whatever their mode")
def test_an_unreadable_config_file_keeps_the_os_error(tmp_path):
    """chmod 000 on a config: load_config and load raise ConfigError caused by the PermissionError."""
    from fsm_trainer.config import ConfigError, load, load_config

    p = _config(tmp_path)
    _unreadable(p)
    try:
        for fn in (load_config, load):
            with pytest.raises(ConfigError, match="cannot read the config file: Permission denied") as info:
                fn(p)
            assert isinstance(info.value.__cause__, PermissionError), fn
    finally:
        p.chmod(0o644)


def test_a_config_read_error_keeps_the_os_error(tmp_path, monkeypatch):
    """An I/O error reading a config (any user): ConfigError from load_config and from load (which
    adds the file name) both have the OSError as their cause."""
    from fsm_trainer.config import ConfigError, load, load_config

    p = _config(tmp_path)
    real = Path.read_bytes

    def failing(self: Path) -> bytes:
        if self.name == p.name:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", failing)
    for fn in (load_config, load):
        with pytest.raises(ConfigError, match="cannot read the config file: Input/output error") as info:
            fn(p)
        assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.EIO, fn


def test_decode_errors_are_the_cause(tmp_path):
    """A config that is not valid JSON, or not UTF-8, and a log line that is not JSON: the decode
    error (with its position) is the cause."""
    import json

    from fsm_trainer.config import ConfigError, load_config
    from fsm_trainer.logs import LogFileError, read_log

    bad_json = tmp_path / "cfg.json"
    bad_json.write_text('{"model": {"type": "DigitsNet",}}')
    with pytest.raises(ConfigError, match="cannot parse JSON") as info:
        load_config(bad_json)
    assert isinstance(info.value.__cause__, json.JSONDecodeError) and info.value.__cause__.colno == 32

    latin = tmp_path / "cfg2.py"
    latin.write_bytes(b"name = '\xe9'\n")
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        load_config(latin)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)

    log = tmp_path / "run.log.json"
    log.write_text('{"mode": "train"\n')
    with pytest.raises(LogFileError, match="not JSON") as info:
        read_log(log)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_from_none_stays_only_where_the_cause_adds_nothing():
    """A lookup turned into "unknown name; allowed: ..." drops the KeyError: the message says it all."""
    from fsm_trainer.priority import get_priority

    with pytest.raises(HookError, match="unknown priority name 'HIGHESTT'; allowed: HIGHEST, VERY_HIGH") as info:
        get_priority("HIGHESTT")
    assert info.value.__cause__ is None and info.value.__suppress_context__
