"""The resources of a run: what effect hooks reach through their closures.

A :class:`RunContext` is built by :func:`fsm_trainer.run` before the loop and handed to hook
factories (callables ``ctx -> Hook``). It holds torch objects and files, never progress:
progress lives in :class:`~fsm_trainer.state.TrainState`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from fsm_trainer.logbuffer import LogBuffer
from fsm_trainer.transitions import TransitionTable


@attrs.define
class LogBus:
    """The log buffer the loggers average from, and the loggers that registered with it."""

    buffer: LogBuffer | None = None
    """Made when a hook first asks for it; the run then feeds it every step's ``log_vars``."""
    loggers: list[str] = attrs.field(factory=list)
    memory_mb: int | None = None
    """With several ranks on CUDA: the peak allocated memory of the busiest rank (MB), taken by
    every rank together when the loggers average (mmcv's text logger reduces it to rank 0)."""


@attrs.define
class CheckpointLedger:
    """Where checkpoints of this run go, and the checkpoint it resumed from."""

    dirs: list[Path] = attrs.field(factory=list)
    """Where checkpoint hooks write; ``resume="auto"`` looks there first."""
    resumed_from: Path | None = None


@attrs.define
class RunLayout:
    """What the runner fixes once the hooks are composed and the loop starts."""

    hooks: tuple[Any, ...] = ()
    """Every hook of the run, in call order."""
    iter_loaders: list[Any] | None = None
    """The cycling loaders of an iter-based run; their ``(epoch, index)`` is the data position."""


@attrs.frozen
class RunContext:
    """Model, optimizer, loaders, table and files of one run, plus its explicit services.

    The resources are fixed when the run starts (the optimizer is the one in use, after FSDP
    rebuilt it; ``parallel_model`` the DDP wrapper): nothing rebinds them. The mutable parts are
    services with one job each: :attr:`logs` (the log buffer and its loggers), :attr:`ledger`
    (checkpoint directories, the checkpoint resumed from), :attr:`layout` (hooks and cycling
    loaders, set by the runner), :attr:`on_exit` (cleanup callbacks; the run calls every
    one, last added first, through an ``ExitStack``, also when it raises) and
    :attr:`before_step` (callbacks at each step's start).
    """

    table: TransitionTable
    data_loaders: Sequence[Any]
    model: Any = None
    optimizer: Any = None
    work_dir: Path | None = None
    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger("fsm_trainer"))
    meta: dict[str, Any] = attrs.field(factory=dict)
    """mmcv's ``runner.meta``: saved in every checkpoint (hooks keep ``hook_msgs`` there)."""
    timestamp: str = attrs.field(factory=lambda: time.strftime("%Y%m%d_%H%M%S"))
    parallel_model: Any = None
    """The DistributedDataParallel wrapper of ``model`` in a ``run(..., distributed=True)``."""
    device: Any = None
    """The ``torch.device`` the run trains on (``None``: nothing is moved, see ``run(device=...)``)."""
    logs: LogBus = attrs.field(factory=LogBus)
    ledger: CheckpointLedger = attrs.field(factory=CheckpointLedger)
    layout: RunLayout = attrs.field(factory=RunLayout)
    on_exit: list[Callable[[], None]] = attrs.field(factory=list)
    """Called (last added first) when the run ends, also when it raises."""
    before_step: list[Callable[[], None]] = attrs.field(factory=list)
    """Called, in the order added, right before each step of the run (after the iteration's
    ``before_*_iter`` hooks): effects at the step's edge that neither read nor change the state,
    at no hook point (the iteration timer's ``data_time``). Hook factories add to it."""

    @property
    def hooks(self) -> tuple[Any, ...]:
        """Every hook of the run, in call order (once the hooks are composed)."""
        return self.layout.hooks

    @property
    def iter_loaders(self) -> list[Any] | None:
        """The cycling loaders of an iter-based run (once its loop started)."""
        return self.layout.iter_loaders

    @property
    def checkpoint_dirs(self) -> list[Path]:
        """Where checkpoint hooks write; ``resume="auto"`` looks there first."""
        return self.ledger.dirs

    @property
    def resumed_from(self) -> Path | None:
        """The checkpoint this run resumed from, if any."""
        return self.ledger.resumed_from

    @property
    def loggers(self) -> list[str]:
        """The names of the logger hooks, in registration order."""
        return self.logs.loggers

    @property
    def log_buffer(self) -> LogBuffer:
        """The buffer loggers average from; asking for it makes the run feed it ``log_vars``."""
        if self.logs.buffer is None:
            self.logs.buffer = LogBuffer()
        return self.logs.buffer

    @property
    def uses_log_buffer(self) -> bool:
        """Whether some hook asked for :attr:`log_buffer`."""
        return self.logs.buffer is not None

    def loader_len(self, phase: int) -> int | None:
        """``len()`` of the loader of workflow entry ``phase``, or ``None`` if it has none."""
        try:
            return len(self.data_loaders[phase])
        except TypeError:
            return None

    @property
    def max_epochs(self) -> int | None:
        """The table's ``max_epochs`` (``None`` in an iter-based run)."""
        return self.table.max_epochs

    @property
    def max_iters(self) -> int | None:
        """Train iterations of the whole run.

        Iter-based: ``max_iters``. Epoch-based: ``max_epochs * len(first train loader)``, as
        mmcv computes it, or ``None`` when that loader has no length.
        """
        if self.table.by == "iter":
            return self.table.max_iters
        for j, (mode, _) in enumerate(self.table.workflow):
            if mode == "train":
                n = self.loader_len(j)
                return None if n is None else n * self.table.max_progress
        return None

    def current_lr(self) -> list[float] | dict[str, list[float]]:
        """Learning rates of every param group (a dict for a dict of optimizers), as mmcv."""
        opt = self.optimizer
        if isinstance(opt, dict):
            return {k: [g["lr"] for g in o.param_groups] for k, o in opt.items()}
        if opt is None:
            return []
        return [g["lr"] for g in opt.param_groups]

    def register_logger(self, name: str) -> int:
        """Record a logger hook; returns its index (the last one clears the buffer output)."""
        self.logs.loggers.append(name)
        return len(self.logs.loggers) - 1
