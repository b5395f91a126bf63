"""The errors of checkpoint reading and writing; every one is an :class:`~fsm_trainer.errors.FsmTrainerError`."""

from __future__ import annotations

from fsm_trainer.errors import FsmTrainerError


class CheckpointError(FsmTrainerError, ValueError):
    """A checkpoint cannot be used (or named as asked); the message names the path and the failed check."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The path given to load or resume from does not exist."""


class NotACheckpointError(CheckpointError):
    """The path is not an fsm_trainer checkpoint (for instance a pickle file)."""


class CorruptCheckpointError(CheckpointError):
    """A file is missing, truncated, altered, or not valid for its format."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint does not fit the run it is loaded into (model, optimizer, workflow, data)."""


class CheckpointWriteError(FsmTrainerError, OSError):
    """Writing a checkpoint failed (disk full, permissions...); previous checkpoints are intact."""


def _read_error(path: object, exc: OSError) -> CheckpointError:
    """The error for a checkpoint file that exists but cannot be read; raise it ``from exc``."""
    return CheckpointError(f"{path}: cannot read: {exc.strerror or exc}")
