"""Data-parallel wrapping: DistributedDataParallel around a model (mmcv-style steps through
:class:`StepModule`), the ``distributed=`` strategies of :func:`fsm_trainer.run`, and
:func:`prepare`, what a run does before its loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import nn

from fsm_trainer.dist.fsdp import _check_ready, is_fsdp, shard_model
from fsm_trainer.dist.group import get_dist_info, is_dist
from fsm_trainer.errors import DistError, ProcessGroupError


class StepModule(nn.Module):
    """Routes an mmcv-style model's ``train_step``/``val_step`` through ``forward``.

    DistributedDataParallel synchronises gradients only for computations that went through
    its ``forward``; wrapping the model in this module and the module in DDP makes
    ``ddp(batch, "train")`` call ``model.train_step(batch, optimizer)`` with DDP's bookkeeping.
    """

    def __init__(self, model: nn.Module, optimizer: Any = None) -> None:
        super().__init__()
        self.model = model
        self.optimizer = optimizer

    def forward(self, batch: Any, mode: str = "train") -> Any:
        model: Any = self.model  # an mmcv-style model: train_step/val_step are its own methods
        if mode == "train":
            return model.train_step(batch, self.optimizer)
        return model.val_step(batch, self.optimizer)


def wrap_model(
    model: nn.Module, optimizer: Any = None, *, fsdp: bool = False, find_unused_parameters: bool = False
) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel for data-parallel training.

    mmcv-style models (with ``train_step``) are wrapped through :class:`StepModule`, so call
    the result as ``wrapped(batch, "train")``; plain modules are wrapped directly. On CUDA the
    model is moved to ``LOCAL_RANK``'s device first. For sharded training use
    :func:`shard_model` (``fsdp=True`` here shards ``model`` in place and returns it; build
    the optimizer afterwards, on its sharded parameters).
    """
    if not is_dist():
        msg = "wrap_model needs an initialised process group (call init_dist() under torchrun)"
        raise ProcessGroupError(msg)
    if fsdp:
        if optimizer is not None:
            msg = ("wrap_model(fsdp=True) cannot hand back the optimizer rebuilt on the sharded parameters; "
                   "use optimizer = fsm_trainer.dist.shard_model(model, optimizer)")
            raise DistError(msg)
        shard_model(model, None)
        return model
    inner: nn.Module = StepModule(model, optimizer) if hasattr(model, "train_step") else model
    device_ids = None
    if torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
        inner = inner.to(device)
        device_ids = [device.index]
    return nn.parallel.DistributedDataParallel(
        inner, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )



def loader_num_replicas(loader: Any) -> int:
    """The ``num_replicas`` of a loader's sampler (or batch sampler's sampler); 1 if it has none."""
    sampler = getattr(loader, "sampler", None)
    if not hasattr(sampler, "num_replicas"):
        sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    return int(getattr(sampler, "num_replicas", 1))


STRATEGIES = ("ddp", "fsdp")
"""The values of ``run(..., distributed=...)`` (``True`` means ``"ddp"``)."""


def check_strategy(distributed: Any) -> str | None:
    """``"ddp"``, ``"fsdp"`` or ``None`` (no data parallelism) for a ``distributed=`` value.

    Raises:
        DistError: any other value, naming the allowed ones.
    """
    if distributed is False or distributed is None:
        return None
    if distributed is True:
        return "ddp"
    if isinstance(distributed, str) and distributed.lower() in STRATEGIES:
        return distributed.lower()
    msg = f"distributed={distributed!r}; allowed: False, True (= 'ddp'), 'ddp', 'fsdp'"
    raise DistError(msg)


@attrs.frozen
class Prepared:
    """What :func:`prepare` made: the module train steps go through and the optimizer to use."""

    parallel: nn.Module | None
    """The DistributedDataParallel wrapper; ``None`` under FSDP, where the model itself is sharded."""
    optimizer: Any
    """The run's optimizer: the one given (DDP) or the same rebuilt on the sharded parameters (FSDP)."""


def prepare(
    model: Any, optimizer: Any, data_loaders: Sequence[Any], workflow: Sequence[tuple[str, int]],
    logger: logging.Logger | None = None, *, strategy: str = "ddp", shard_modules: Sequence[type[nn.Module]] = (),
    find_unused_parameters: bool = False,
) -> Prepared:
    """What ``run(..., distributed=...)`` does before the loop: check, then wrap ``model`` in
    DDP (``strategy="ddp"``) or shard it with FSDP (``"fsdp"``, see :func:`shard_model`).

    ``find_unused_parameters`` goes to DistributedDataParallel (the config key of that name).

    Warns about a train loader that is not sharded over the ranks (every rank would then
    read the whole dataset, and the ranks' batches would repeat each other).

    Raises:
        ProcessGroupError: no process group (call :func:`init_dist` first).
        ArgumentTypeError: ``model`` is not an ``nn.Module``.
        DistError: an unknown strategy; under FSDP, an optimizer with state.
    """
    strategy = check_strategy(strategy) or "ddp"
    _check_ready(model, "run(..., distributed=...)")
    world = get_dist_info()[1]
    for i, (loader, (mode, _)) in enumerate(zip(data_loaders, workflow, strict=True)):
        if mode == "train" and loader_num_replicas(loader) != world:
            (logger or logging.getLogger("fsm_trainer")).warning(
                "data_loaders[%d] (train) is not sharded over the %d ranks: every rank reads the whole dataset; "
                "build it with resumable_loader(..., distributed=True)", i, world,
            )
    if strategy == "fsdp":
        if is_fsdp(model):  # sharded by the caller, optimizer built on the shards
            return Prepared(None, optimizer)
        return Prepared(None, shard_model(model, optimizer, modules=shard_modules))
    return Prepared(wrap_model(model, optimizer, find_unused_parameters=find_unused_parameters), optimizer)
