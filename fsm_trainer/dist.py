"""torch.distributed helpers: process group from torchrun's environment, rank queries,
cross-rank averages and result gathering, and model wrapping (DDP, FSDP).

Launch with torchrun, which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_dist` reads them (``env://``) and picks ``nccl`` on GPU, ``gloo``
on CPU. Everything here also works, as a no-op or identity, in a single process without a
process group, so the same code runs both ways.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import attrs
import torch
import torch.distributed as dist
from torch import nn


def is_dist() -> bool:
    """Whether a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_dist_info() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without a process group."""
    if is_dist():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True on rank 0 (and in a single process)."""
    return get_dist_info()[0] == 0


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_dist():
        dist.barrier()


def init_dist(launcher: str = "pytorch", backend: str | None = None, timeout_s: float = 1800) -> tuple[int, int]:
    """Initialise the default process group from torchrun's environment.

    Args:
        launcher: only ``"pytorch"`` (torchrun / ``torch.distributed.run``) is supported.
        backend: ``nccl`` when CUDA is available, else ``gloo``, unless given (``nccl``
            without CUDA falls back to ``gloo`` with a warning).
        timeout_s: collective timeout.

    Returns:
        ``(rank, world_size)``.

    Raises:
        ValueError: an unknown launcher, or the torchrun variables are missing.
    """
    if launcher != "pytorch":
        msg = f"unknown launcher {launcher!r}; allowed: 'pytorch' (torchrun)"
        raise ValueError(msg)
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        msg = f"launcher 'pytorch' needs torchrun's environment; missing {', '.join(missing)} (start with torchrun)"
        raise ValueError(msg)
    if is_dist():
        return get_dist_info()
    use_cuda = torch.cuda.is_available()
    if backend == "nccl" and not use_cuda:
        # mmcv's configs all say dist_params = dict(backend="nccl"); on CPU that cannot work.
        logging.getLogger("fsm_trainer").warning("backend 'nccl' needs CUDA, which is not available: using 'gloo'")
        backend = "gloo"
    backend = backend or ("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = timedelta(seconds=timeout_s)
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if restart is not None and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # Workers share torchrun's store across restarts, and the process group's keys of the
        # failed attempt are still in it: a restarted gloo group reads the dead workers'
        # addresses and fails to connect. A prefix per attempt keeps the attempts apart.
        world = int(os.environ["WORLD_SIZE"])
        agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                              is_master=False, timeout=timeout)
        store = dist.PrefixStore(f"fsm_trainer/attempt_{restart}", agent)
        dist.init_process_group(backend, store=store, rank=int(os.environ["RANK"]), world_size=world, timeout=timeout)
    else:
        dist.init_process_group(backend, init_method="env://", timeout=timeout)
    return get_dist_info()


def all_reduce_mean(values: Mapping[str, float]) -> dict[str, float]:
    """Average scalar values over ranks (every rank must call it with the same keys)."""
    if not is_dist() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


def interleave_results(parts: Sequence[Sequence[Any]], size: int) -> list[Any]:
    """Undo a DistributedSampler's split: rank r got samples r, r+W, r+2W, ...

    The sampler pads the dataset to a multiple of the world size, so the padded tail is cut
    at ``size`` (the dataset length).

    >>> interleave_results([[0, 2, 4], [1, 3, 0]], size=5)
    [0, 1, 2, 3, 4]
    """
    ordered: list[Any] = []
    for group in zip(*parts, strict=False):
        ordered.extend(group)
    return ordered[:size]


def collect_results(results: Sequence[Any], size: int) -> list[Any] | None:
    """Gather per-sample results from every rank to rank 0 in dataset order.

    Returns the ordered list on rank 0, ``None`` on other ranks; in a single process, the
    first ``size`` results.
    """
    if not is_dist():
        return list(results)[:size]
    rank, world = get_dist_info()
    parts: list[Any] = [None] * world if rank == 0 else []
    dist.gather_object(list(results), parts if rank == 0 else None, dst=0)
    if rank != 0:
        return None
    return interleave_results(parts, size)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (identity in a single process).

    Objects travel pickled between the job's own processes; nothing is read from files.
    """
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> list[Any] | None:
    """Every rank's ``obj``, in rank order, on rank 0; ``None`` on the others.

    In a single process: ``[obj]``.
    """
    if not is_dist():
        return [obj]
    rank, world = get_dist_info()
    out: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on some rank (every rank must call it; ``flag`` alone without a group)."""
    if not is_dist():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def rescale_position(batches: int, old_world: int, new_world: int) -> int:
    """Per-rank batches to skip when a position saved by ``old_world`` ranks resumes on ``new_world``.

    The ranks' first ``k`` batches together are the first ``k * old_world`` batches' worth of
    the epoch's global order; the resumed ranks start at the first batch boundary at or after
    that point, so no sample is seen twice and fewer than ``new_world`` batches are skipped.

    >>> rescale_position(3, 2, 2), rescale_position(3, 2, 1), rescale_position(3, 1, 2)
    (3, 6, 2)
    """
    if old_world == new_world:
        return batches
    return -(-batches * old_world // new_world)


def collect_outputs(outputs: Any, size: int) -> Any:
    """:func:`collect_results` for per-sample outputs: a tensor (one row per sample) or a list.

    Rank 0 gets the rows of every rank in dataset order (tensors concatenated, on CPU); other
    ranks get ``None``; a single process gets the first ``size`` rows.

    >>> collect_outputs(torch.arange(4), size=3).tolist()
    [0, 1, 2]
    """
    if not isinstance(outputs, torch.Tensor):
        return collect_results(list(outputs), size)
    local = outputs.detach().cpu()
    parts = gather_objects(local)
    if parts is None:
        return None
    if len({p.shape[0] for p in parts}) == 1:  # padded shards: interleave the rows by a reshape
        return torch.stack(parts, dim=1).reshape(-1, *local.shape[1:])[:size]
    return torch.stack(interleave_results([list(p.unbind(0)) for p in parts], size))


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
        if mode == "train":
            return self.model.train_step(batch, self.optimizer)
        return self.model.val_step(batch, self.optimizer)


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
        raise RuntimeError(msg)
    if fsdp:
        if optimizer is not None:
            msg = ("wrap_model(fsdp=True) cannot hand back the optimizer rebuilt on the sharded parameters; "
                   "use optimizer = fsm_trainer.dist.shard_model(model, optimizer)")
            raise ValueError(msg)
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


# --------------------------------------------------------------------------- FSDP


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
        ValueError: the optimizer already has state (rebuilding would drop it), or holds a
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
        raise ValueError(msg)
    new = dict(model.named_parameters())
    groups = []
    for i, g in enumerate(optimizer.param_groups):
        params = []
        for p in g["params"]:
            if id(p) not in names:
                msg = f"optimizer param group {i} holds a tensor of shape {tuple(p.shape)} that is not a parameter of the model"
                raise ValueError(msg)
            params.append(new[names[id(p)]])
        groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": params})
    try:
        return type(optimizer)(groups, **optimizer.defaults)
    except TypeError:  # an optimizer whose defaults are not its constructor's arguments
        return type(optimizer)(groups)


def _check_ready(model: Any, what: str) -> None:
    if not is_dist():
        msg = f"{what} needs a process group: call fsm_trainer.dist.init_dist() (under torchrun)"
        raise RuntimeError(msg)
    if not isinstance(model, nn.Module):
        msg = f"{what} needs model to be a torch.nn.Module, got {type(model).__name__}"
        raise TypeError(msg)


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
        RuntimeError: no process group.
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: see :func:`rebuild_optimizer`.
    """
    _check_ready(model, "shard_model(model, ...)")
    if is_fsdp(model):
        msg = "the model is already sharded; give the optimizer built on its sharded parameters"
        raise ValueError(msg)
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
    msd = get_model_state_dict(model, options=opts)
    names = _param_names(model)

    def one(o: Any) -> Any:
        fqn = get_optimizer_state_dict(model, o, options=opts)
        if not fqn:
            return None
        order = [names[id(p)] for g in o.param_groups for p in g["params"]]
        index = {n: i for i, n in enumerate(order)}
        groups, start = [], 0
        for g_saved, g in zip(fqn["param_groups"], o.param_groups, strict=True):
            n = len(g["params"])
            groups.append({**{k: v for k, v in g_saved.items() if k != "params"}, "params": list(range(start, start + n))})
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
        raise ValueError(msg)
    fqn = {
        "state": {order[int(i)]: v for i, v in state_dict["state"].items()},
        "param_groups": [{**g, "params": [order[int(i)] for i in g["params"]]} for g in saved_groups],
    }
    set_optimizer_state_dict(model, optimizer, fqn, options=StateDictOptions(full_state_dict=True))


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
        ValueError: any other value, naming the allowed ones.
    """
    if distributed is False or distributed is None:
        return None
    if distributed is True:
        return "ddp"
    if isinstance(distributed, str) and distributed.lower() in STRATEGIES:
        return distributed.lower()
    msg = f"distributed={distributed!r}; allowed: False, True (= 'ddp'), 'ddp', 'fsdp'"
    raise ValueError(msg)


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
) -> Prepared:
    """What ``run(..., distributed=...)`` does before the loop: check, then wrap ``model`` in
    DDP (``strategy="ddp"``) or shard it with FSDP (``"fsdp"``, see :func:`shard_model`).

    Warns about a train loader that is not sharded over the ranks (every rank would then
    read the whole dataset, and the ranks' batches would repeat each other).

    Raises:
        RuntimeError: no process group (call :func:`init_dist` first).
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: an unknown strategy; under FSDP, an optimizer with state.
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
    return Prepared(wrap_model(model, optimizer), optimizer)
