"""fsm_trainer: an exactly reproducible training runner built as a small state machine."""

from typing import TYPE_CHECKING

from fsm_trainer.errors import ArgumentTypeError as ArgumentTypeError
from fsm_trainer.errors import FsmTrainerError as FsmTrainerError
from fsm_trainer.errors import HookError as HookError
from fsm_trainer.errors import MappingKeyError as MappingKeyError
from fsm_trainer.errors import NoTransition as NoTransition
from fsm_trainer.errors import WorkflowError as WorkflowError
from fsm_trainer.hook import POINTS as POINTS
from fsm_trainer.hook import Hook as Hook
from fsm_trainer.hook import UnreachableHookWarning as UnreachableHookWarning
from fsm_trainer.hook import compose_hooks as compose_hooks
from fsm_trainer.priority import Priority as Priority
from fsm_trainer.state import TrainState as TrainState
from fsm_trainer.transitions import END as END
from fsm_trainer.transitions import START as START
from fsm_trainer.transitions import TransitionTable as TransitionTable
from fsm_trainer.transitions import compile_workflow as compile_workflow
from fsm_trainer.transitions import run_length as run_length
from fsm_trainer.transitions import transition as transition

if TYPE_CHECKING:
    from fsm_trainer.checkpoint import CheckpointError as CheckpointError
    from fsm_trainer.checkpoint import load_checkpoint as load_checkpoint
    from fsm_trainer.checkpoint import load_weights as load_weights
    from fsm_trainer.checkpoint import save_checkpoint as save_checkpoint
    from fsm_trainer.context import RunContext as RunContext
    from fsm_trainer.runner import run as run
    from fsm_trainer.sampler import ResumableSampler as ResumableSampler
    from fsm_trainer.sampler import resumable_loader as resumable_loader

__version__ = "0.1.0"


_CHECKPOINT_API = {
    "load_checkpoint": "fsm_trainer.checkpoint", "load_weights": "fsm_trainer.checkpoint",
    "save_checkpoint": "fsm_trainer.checkpoint", "CheckpointError": "fsm_trainer.checkpoint",
    "ResumableSampler": "fsm_trainer.sampler",
    "resumable_loader": "fsm_trainer.sampler",
}


def __getattr__(name: str) -> object:
    # ``run`` and the context import torch; keep ``import fsm_trainer`` torch-free for the pure core.
    if name == "run":
        from fsm_trainer.runner import run

        return run
    if name == "RunContext":
        from fsm_trainer.context import RunContext

        return RunContext
    if name in _CHECKPOINT_API:
        import importlib

        return getattr(importlib.import_module(_CHECKPOINT_API[name]), name)
    msg = f"module 'fsm_trainer' has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "END",
    "POINTS",
    "START",
    "ArgumentTypeError",
    "CheckpointError",
    "FsmTrainerError",
    "Hook",
    "HookError",
    "MappingKeyError",
    "NoTransition",
    "Priority",
    "ResumableSampler",
    "RunContext",
    "TrainState",
    "TransitionTable",
    "UnreachableHookWarning",
    "WorkflowError",
    "__version__",
    "compile_workflow",
    "compose_hooks",
    "load_checkpoint",
    "load_weights",
    "resumable_loader",
    "run",
    "run_length",
    "save_checkpoint",
    "transition",
]
