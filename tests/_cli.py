"""``fsm-trainer`` in the test process: ``fsm_trainer.cli.main(argv)`` with its output captured.

:func:`run_cli` is what the command-line tests use instead of a subprocess (each of which
imports torch anew). :func:`global_state_restored` gives back what one in-process command
changes in the interpreter, so that no test sees another's leftovers:

* the ``fsm_trainer`` logger (``main`` sets its level, turns ``propagate`` off and adds a console
  handler bound to the ``sys.stdout`` of the call) and the root logger;
* the SIGINT/SIGTERM handlers (the checkpoint hook installs them while a run lasts);
* ``sys.path`` (a ``custom_imports`` module found in the current directory appends it), the
  current directory, and the modules the command imported from outside the installed packages
  and ``fsm_trainer`` (user code in a test's directory), with what they registered in the
  ``fsm_trainer.registry`` registries (a later import runs their registrations again);
* torch's thread count, deterministic-algorithm and backend flags, and the python, NumPy and
  torch random states (a config's ``seed`` and ``deterministic`` set them for the process);
* and the workers of the run's DataLoaders are shut down (``_workers.py``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import signal
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _workers import shut_down_loader_workers

import fsm_trainer
from fsm_trainer import registry as fsm_registry
from fsm_trainer.cli import main
from fsm_trainer.device import backend_flags, restore_backend_flags

ROOT = Path(__file__).resolve().parent.parent
_KEPT_ROOTS = tuple(
    str(Path(p).resolve())
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, *sysconfig.get_paths().values(),
              str(Path(fsm_trainer.__file__).parent)}
    if p
)


@dataclass(frozen=True)
class CliResult:
    """What a command left: its exit code and output (the fields of ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None,
            threads: int | None = None) -> CliResult:
    """``fsm-trainer ARGS`` in this process, in ``cwd`` (default: the current directory).

    ``threads``: torch's intra-op thread count for the command (as ``OMP_NUM_THREADS`` for a
    subprocess), given back afterwards with the rest of the interpreter's state.
    """
    out, err = io.StringIO(), io.StringIO()
    with global_state_restored():
        if cwd is not None:
            os.chdir(cwd)
        if threads is not None:
            torch.set_num_threads(threads)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    return CliResult(code, out.getvalue(), err.getvalue())


def _logger_state(logger: logging.Logger) -> tuple[Any, ...]:
    return logger.level, logger.propagate, logger.disabled, list(logger.handlers), list(logger.filters)


def _restore_logger(logger: logging.Logger, state: tuple[Any, ...]) -> None:
    level, propagate, disabled, handlers, filters = state
    for h in list(logger.handlers):
        if h not in handlers:
            logger.removeHandler(h)
            h.close()
    logger.handlers[:] = handlers
    logger.filters[:] = filters
    logger.setLevel(level)
    logger.propagate, logger.disabled = propagate, disabled


def _is_user_module(module: Any) -> bool:
    """A module imported from outside the installed packages and ``fsm_trainer`` (a test's user code)."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return False
    path = str(Path(file).resolve())
    return not any(path == root or path.startswith(root + os.sep) for root in _KEPT_ROOTS)


def _registries() -> list[Any]:
    return [r for r in vars(fsm_registry).values() if isinstance(r, fsm_registry.Registry)]


def _tables(reg: Any) -> dict[str, dict[Any, Any]]:
    """The registry's name tables (its dict attributes), copied."""
    return {k: dict(v) for k, v in vars(reg).items() if isinstance(v, dict)}


def _torch_flags() -> dict[str, Any]:
    return {
        "threads": torch.get_num_threads(),
        "deterministic": (torch.are_deterministic_algorithms_enabled(),
                          torch.is_deterministic_algorithms_warn_only_enabled()),
        "cudnn.deterministic": torch.backends.cudnn.deterministic,
        "backend": backend_flags(),
    }


def _set_torch_flags(flags: dict[str, Any]) -> None:
    if torch.get_num_threads() != flags["threads"]:
        torch.set_num_threads(flags["threads"])
    enabled, warn_only = flags["deterministic"]
    if (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) != (
            enabled, warn_only):
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)  # (imports torch._inductor: 2 s)
    torch.backends.cudnn.deterministic = flags["cudnn.deterministic"]
    restore_backend_flags(flags["backend"])


@contextlib.contextmanager
def global_state_restored() -> Iterator[None]:
    """Give back the interpreter state that in-process ``fsm-trainer`` commands change (see the module)."""
    cwd, path, modules = os.getcwd(), list(sys.path), set(sys.modules)
    loggers = {name: _logger_state(logging.getLogger(name)) for name in ("", "fsm_trainer")}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    tables = [(reg, _tables(reg)) for reg in _registries()]
    flags = _torch_flags()
    rng = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        shut_down_loader_workers()  # a run's DataLoader workers: now, not 5 s during a later garbage collection
        os.chdir(cwd)
        sys.path[:] = path
        user = {name for name in set(sys.modules) - modules if _is_user_module(sys.modules[name])}
        for name in user:
            del sys.modules[name]
        for reg, before in tables:
            after = _tables(reg)
            # Names (re)bound to objects of the removed modules: back to what they were.
            names = {key for table in after.values() for key, obj in table.items()
                     if getattr(obj, "__module__", None) in user}
            for attr, table in before.items():
                live = getattr(reg, attr)
                for key in names:
                    if key in table:
                        live[key] = table[key]
                    else:
                        live.pop(key, None)
        for name, state in loggers.items():
            _restore_logger(logging.getLogger(name), state)
        for sig, handler in handlers.items():
            if signal.getsignal(sig) is not handler and handler is not None:
                signal.signal(sig, handler)
        _set_torch_flags(flags)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
