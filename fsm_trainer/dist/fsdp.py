"""Sharded data parallelism with FSDP (``fully_shard``): sharding a model, rebuilding its
optimizer on the shards, and full (unsharded) state dicts for checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn

from fsm_trainer.dist.group import get_dist_info, is_dist
from fsm_trainer.errors import ArgumentTypeError, DistError, ProcessGroupError


def is_fsdp(model: Any) -> bool:
    """Whether ``model`` was sharded by FSDP (``torch.distributed.fsdp.fully_shard``)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without FSDP2
        return False
    return isinstance(model, FSDPModule)


def _coalesced_broadcast(tensors: Sequence[torch.Tensor], src: int = 0) -> None:
    """Broadcast ``tensors`` from ``src`` with one collective per dtype."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    with torch.no_grad():
        for group in by_dtype.values():
            flat = torch.cat([t.detach().reshape(-1) for t in group])
            dist.broadcast(flat, src)
            offset = 0
            for t in group:
                n = t.numel()
                t.copy_(flat[offset: offset + n].view_as(t))
                offset += n


def _broadcast_buffers_before_train_forward(module: nn.Module, _args: Any) -> None:
    # As DistributedDataParallel does: rank 0's buffers (BatchNorm statistics) before each
    # training forward, so the ranks agree and a checkpoint's rank-0 copy is the run's.
    if module.training and torch.is_grad_enabled():
        _coalesced_broadcast(list(module.buffers()))


def rebuild_optimizer(optimizer: Any, names: Mapping[int, str], model: nn.Module) -> Any:
    """The same optimizer (class, param groups and their hyperparameters) on ``model``'s current
    parameters, matched by name (``names``: ``id(old parameter) -> name`` taken before the
    parameters were replaced). A dict of optimizers is rebuilt one by one.

    Raises:
        DistError: the optimizer already has state (rebuilding would drop it), or holds a
            tensor that is not one of the model's parameters.
    """
    if optimizer is None:
        return None
    if isinstance(optimizer, Mapping):
        return {k: rebuild_optimizer(o, names, model) for k, o in optimizer.items()}
    if optimizer.state:
        msg = ("FSDP replaces the model's parameters, so the optimizer is rebuilt on the sharded ones; this "
               "optimizer already has state (momentum...), which would be lost: give a fresh optimizer and "
               "restore its state with resume= instead")
        raise DistError(msg)
    new = dict(model.named_parameters())
    groups = []
    for i, g in enumerate(optimizer.param_groups):
        params = []
        for p in g["params"]:
            if id(p) not in names:
                msg = (f"optimizer param group {i} holds a tensor of shape {tuple(p.shape)} that is not a parameter "
                       "of the model")
                raise DistError(msg)
            params.append(new[names[id(p)]])
        groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": params})
    try:
        return type(optimizer)(groups, **optimizer.defaults)
    except TypeError:  # an optimizer whose defaults are not its constructor's arguments
        return type(optimizer)(groups)


def _check_ready(model: Any, what: str) -> None:
    if not is_dist():
        msg = f"{what} needs a process group: call fsm_trainer.dist.init_dist() (under torchrun)"
        raise ProcessGroupError(msg)
    if not isinstance(model, nn.Module):
        msg = f"{what} needs model to be a torch.nn.Module, got {type(model).__name__}"
        raise ArgumentTypeError(msg)


def shard_model(model: nn.Module, optimizer: Any = None, *, modules: Sequence[type[nn.Module]] = ()) -> Any:
    """Shard ``model`` over the ranks with FSDP (``fully_shard``, in place); return the optimizer
    to use, rebuilt on the sharded parameters.

    Rank 0's parameters and buffers are broadcast first (as DistributedDataParallel does), so
    every rank starts from the same model. Submodules that are instances of ``modules`` (e.g.
    transformer blocks) become their own FSDP units, which bounds the memory of the gathered
    parameters to one unit at a time; the root is always one. Buffers are not sharded: rank 0's
    are broadcast before each training forward, as DistributedDataParallel does.

    The model keeps its class (FSDP makes it a subclass), its parameter names and its
    ``forward``/``train_step``: steps call it directly. Its parameters become sharded
    DTensors; :func:`fsm_trainer.checkpoint.snapshot` and ``resume=`` save and load full,
    unsharded state dicts, so a checkpoint of a sharded run loads anywhere.

    Raises:
        ProcessGroupError: no process group.
        ArgumentTypeError: ``model`` is not an ``nn.Module``.
        DistError: the model is already sharded; see :func:`rebuild_optimizer`.
    """
    _check_ready(model, "shard_model(model, ...)")
    if is_fsdp(model):
        msg = "the model is already sharded; give the optimizer built on its sharded parameters"
        raise DistError(msg)
    from torch.distributed.fsdp import fully_shard

    names = {id(p): n for n, p in model.named_parameters()}
    if optimizer is not None:  # checked before anything changes
        rebuild_optimizer(optimizer, names, model)
    if torch.cuda.is_available():
        model.to(torch.device("cuda", torch.cuda.current_device()))
    _coalesced_broadcast([*model.parameters(), *model.buffers()])
    types = tuple(modules)
    if types:
        for m in list(model.modules()):
            if m is not model and isinstance(m, types):
                fully_shard(m)
    fully_shard(model)
    if any(True for _ in model.buffers()):
        model.register_forward_pre_hook(_broadcast_buffers_before_train_forward)
    return rebuild_optimizer(optimizer, names, model)


def full_tensors(obj: Any) -> Any:
    """``obj`` with every sharded DTensor replaced by its full tensor on CPU (a collective per
    DTensor: every rank must call it); other values are returned as they are."""
    from torch.distributed.tensor import DTensor

    if isinstance(obj, DTensor):
        return obj.full_tensor().cpu()
    if isinstance(obj, dict):
        return {k: full_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(full_tensors(v) for v in obj)
    return obj


def copy_full_(dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst.copy_(src)`` where ``dst`` may be a sharded DTensor and ``src`` a full tensor
    (every rank holds ``src``; each copies its own shard, no communication)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(dst, DTensor) and not isinstance(src, DTensor):
        src = distribute_tensor(src.to(dst.device), dst.device_mesh, dst.placements, src_data_rank=None)
    dst.copy_(src)


def scalar(t: Any) -> float:
    """A Python float of a scalar tensor, also of a DTensor (a gradient norm under FSDP)."""
    full = getattr(t, "full_tensor", None)
    return float(full() if full is not None else t)


def _param_names(model: nn.Module) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters()}


def fsdp_state_dicts(model: nn.Module, optimizer: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Full (unsharded) model and optimizer state dicts of a sharded ``model`` on rank 0, in
    the layout of an unsharded model's: the optimizer's state keyed by parameter index, as
    ``Optimizer.state_dict()`` gives it. Other ranks get ``({}, None)``. Every rank must call it.
    """
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    # A full state dict holds plain tensors (no DTensor shards).
    msd = cast("dict[str, torch.Tensor]", get_model_state_dict(model, options=opts))
    names = _param_names(model)

    def one(o: Any) -> Any:
        fqn: dict[str, Any] = get_optimizer_state_dict(model, o, options=opts)
        if not fqn:
            return None
        order = [names[id(p)] for g in o.param_groups for p in g["params"]]
        index = {n: i for i, n in enumerate(order)}
        groups, start = [], 0
        for g_saved, g in zip(fqn["param_groups"], o.param_groups, strict=True):
            n = len(g["params"])
            kept = {k: v for k, v in g_saved.items() if k != "params"}
            groups.append({**kept, "params": list(range(start, start + n))})
            start += n
        return {"state": {index[k]: v for k, v in fqn["state"].items()}, "param_groups": groups}

    if optimizer is None:
        osd = None
    elif isinstance(optimizer, Mapping):
        osd = {k: one(o) for k, o in optimizer.items()}
        osd = osd if all(v is not None for v in osd.values()) else None
    else:
        osd = one(optimizer)
    if get_dist_info()[0] != 0:
        return {}, None
    return msd, osd


def fsdp_load_model(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a full state dict into a sharded ``model`` (every rank, each holding the dict)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, dict(state_dict), options=StateDictOptions(full_state_dict=True, strict=False))


def fsdp_load_optimizer(model: nn.Module, optimizer: Any, state_dict: Mapping[str, Any]) -> None:
    """Load an ``Optimizer.state_dict()``-layout state (parameter indices) into the optimizer
    of a sharded ``model`` (every rank, each holding the dict)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _param_names(model)
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    saved_groups = state_dict["param_groups"]
    if len(saved_groups) != len(optimizer.param_groups) or any(
            len(a["params"]) != len(b["params"]) for a, b in zip(saved_groups, optimizer.param_groups, strict=True)):
        msg = "the saved optimizer state has other parameter groups than this optimizer"
        raise DistError(msg)
    fqn: dict[str, Any] = {
        "state": {order[int(i)]: v for i, v in state_dict["state"].items()},
        "param_groups": [{**g, "params": [order[int(i)] for i in g["params"]]} for g in saved_groups],
    }
    set_optimizer_state_dict(model, optimizer, fqn, options=StateDictOptions(full_state_dict=True))
