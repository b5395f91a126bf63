"""mmcv's distributed helpers: ``init_dist``, ``get_dist_info``, ``master_only``, ``allreduce_grads``,
``allreduce_params``.

:func:`init_dist` turns the environment of each launcher (torchrun's, slurm's ``srun``,
Open MPI's ``mpirun``) into torchrun's variables and starts the default process group with
:func:`fsm_trainer.dist.init_dist`: ``nccl`` without CUDA falls back to ``gloo`` (with a
warning), and each process uses the GPU of its ``LOCAL_RANK``. Unlike mmcv, it leaves the
multiprocessing start method as it is.

In a single process, without a process group, :func:`get_dist_info` is ``(0, 1)`` and the
all-reduce helpers do nothing.

>>> get_dist_info()
(0, 1)
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import torch
import torch.distributed as dist

from fsm_trainer.dist import get_dist_info
from fsm_trainer.dist import init_dist as _init_dist
from fsm_trainer.errors import FsmTrainerError

P = ParamSpec("P")
R = TypeVar("R")

LAUNCHERS = ("pytorch", "slurm", "mpi")
"""The launchers :func:`init_dist` knows."""

_DEFAULT_PORT = 29500  # torch.distributed's default MASTER_PORT


class DistLaunchError(FsmTrainerError, ValueError):
    """:func:`init_dist` cannot start: an unknown launcher or argument, or the launcher's environment is missing."""


def _require(launcher: str, names: Iterable[str]) -> dict[str, str]:
    missing = [n for n in names if n not in os.environ]
    if missing:
        msg = (f"init_dist(launcher={launcher!r}) needs the environment variable(s) {', '.join(missing)}, "
               f"which the {launcher} launcher sets; they are not set (was the script started by it?)")
        raise DistLaunchError(msg)
    return {n: os.environ[n] for n in names}


def _int_env(launcher: str, name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        msg = f"init_dist(launcher={launcher!r}): {name}={value!r} is not an integer"
        raise DistLaunchError(msg) from None


def _timeout_s(launcher: str, kwargs: dict[str, Any], allowed: tuple[str, ...]) -> float:
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        msg = (f"init_dist(launcher={launcher!r}): unknown argument(s) {', '.join(unknown)}; "
               f"allowed: launcher, backend, {', '.join(allowed)}")
        raise DistLaunchError(msg)
    timeout = kwargs.get("timeout", 1800)
    if isinstance(timeout, timedelta):
        return timeout.total_seconds()
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    msg = f"init_dist: timeout={timeout!r} is not allowed; allowed: a datetime.timedelta or seconds > 0"
    raise DistLaunchError(msg)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        port: int = s.getsockname()[1]
    return port


def _first_slurm_host(node_list: str) -> str:
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", node_list], capture_output=True, text=True,
                             check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        msg = (f"init_dist(launcher='slurm'): cannot read the first host of SLURM_NODELIST={node_list!r} with "
               f"scontrol ({exc}); set MASTER_ADDR")
        raise DistLaunchError(msg) from exc
    hosts = out.split()
    if not hosts:
        msg = f"init_dist(launcher='slurm'): scontrol lists no host for SLURM_NODELIST={node_list!r}; set MASTER_ADDR"
        raise DistLaunchError(msg)
    return hosts[0]


def _slurm_env(port: Any) -> None:
    env = _require("slurm", ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_NODELIST"))
    proc_id = _int_env("slurm", "SLURM_PROCID", env["SLURM_PROCID"])
    ntasks = _int_env("slurm", "SLURM_NTASKS", env["SLURM_NTASKS"])
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            msg = f"init_dist(launcher='slurm'): port={port!r} is not allowed; allowed: an int in 1..65535 or None"
            raise DistLaunchError(msg)
        os.environ["MASTER_PORT"] = str(port)
    elif "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(_DEFAULT_PORT if _port_free(_DEFAULT_PORT) else _free_port())
    if "MASTER_ADDR" not in os.environ:
        os.environ["MASTER_ADDR"] = _first_slurm_host(env["SLURM_NODELIST"])
    gpus = torch.cuda.device_count()
    os.environ["WORLD_SIZE"] = str(ntasks)
    os.environ["RANK"] = str(proc_id)
    # mmcv's GPU of a task; without GPUs, slurm's own local id
    os.environ["LOCAL_RANK"] = str(proc_id % gpus) if gpus else os.environ.get("SLURM_LOCALID", "0")


def _mpi_env() -> None:
    env = _require("mpi", ("OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"))
    if "MASTER_ADDR" not in os.environ:
        msg = ("init_dist(launcher='mpi') needs MASTER_ADDR (the address of rank 0) in the environment; "
               "it is not set (mpirun -x MASTER_ADDR=...)")
        raise DistLaunchError(msg)
    os.environ.setdefault("MASTER_PORT", str(_DEFAULT_PORT))
    for name in env:
        _int_env("mpi", name, env[name])
    os.environ["WORLD_SIZE"] = env["OMPI_COMM_WORLD_SIZE"]
    os.environ["RANK"] = env["OMPI_COMM_WORLD_RANK"]
    os.environ["LOCAL_RANK"] = env["OMPI_COMM_WORLD_LOCAL_RANK"]


def init_dist(launcher: str, backend: str = "nccl", **kwargs: Any) -> None:
    """Start the default process group of a process started by ``launcher`` (mmcv's ``init_dist``).

    Args:
        launcher: ``'pytorch'`` (torchrun: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
            ``MASTER_PORT``), ``'slurm'`` (``srun``: ``SLURM_PROCID``, ``SLURM_NTASKS``,
            ``SLURM_NODELIST``; ``LOCAL_RANK`` is ``SLURM_PROCID`` modulo the number of GPUs
            (``SLURM_LOCALID`` without GPUs); ``MASTER_ADDR`` defaults to the node list's first host, ``MASTER_PORT``
            to ``port``, else 29500 if free, else a free port) or ``'mpi'`` (Open MPI's
            ``OMPI_COMM_WORLD_*``, with ``MASTER_ADDR`` set; ``MASTER_PORT`` defaults to 29500).
            ``'slurm'`` and ``'mpi'`` set torchrun's variables from theirs.
        backend: ``'nccl'`` (``'gloo'`` when CUDA is not available), ``'gloo'``...
        **kwargs: ``timeout`` (a ``timedelta`` or seconds, default 30 min); for ``'slurm'`` also ``port``.

    Raises:
        DistLaunchError: an unknown launcher or argument, or a variable of the launcher is missing.
    """
    if launcher not in LAUNCHERS:
        msg = f"init_dist: unknown launcher {launcher!r}; allowed: {', '.join(map(repr, LAUNCHERS))}"
        raise DistLaunchError(msg)
    if launcher == "slurm":
        timeout_s = _timeout_s(launcher, kwargs, ("port", "timeout"))
        _slurm_env(kwargs.get("port"))
    else:
        timeout_s = _timeout_s(launcher, kwargs, ("timeout",))
        if launcher == "mpi":
            _mpi_env()
        else:
            _require("pytorch", ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))
    _init_dist("pytorch", backend=backend, timeout_s=timeout_s)


def master_only(func: Callable[P, R]) -> Callable[P, R | None]:
    """Run ``func`` on rank 0 only; on the other ranks the call does nothing and returns ``None``.

    >>> @master_only
    ... def save(path):
    ...     return f"saved {path}"
    >>> save("a.pth")
    'saved a.pth'
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        if get_dist_info()[0] == 0:
            return func(*args, **kwargs)
        return None

    return wrapper


def _average_(tensor: torch.Tensor, world_size: int) -> None:
    if tensor.is_floating_point() or tensor.is_complex():
        tensor.div_(world_size)
    else:  # integer buffers (num_batches_tracked): the floor of the mean
        tensor.floor_divide_(world_size)


def _allreduce_mean(tensors: list[torch.Tensor], world_size: int, coalesce: bool, bucket_size_mb: float) -> None:
    limit = bucket_size_mb * 1024 * 1024 if bucket_size_mb > 0 else 0.0
    buckets: dict[tuple[torch.dtype, torch.device], list[list[torch.Tensor]]] = {}
    filled: dict[tuple[torch.dtype, torch.device], int] = {}  # bytes in the last bucket of each kind
    for t in tensors:
        if not coalesce or t.is_sparse:
            dist.all_reduce(t)
            _average_(t, world_size)
            continue
        key = (t.dtype, t.device)
        runs = buckets.setdefault(key, [])
        nbytes = t.numel() * t.element_size()
        if not runs or (limit and filled[key] + nbytes > limit):
            runs.append([])
            filled[key] = 0
        runs[-1].append(t)
        filled[key] += nbytes
    for runs in buckets.values():
        for run in runs:
            flat = torch.cat([t.reshape(-1) for t in run])
            dist.all_reduce(flat)
            _average_(flat, world_size)
            offset = 0
            for t in run:
                n = t.numel()
                t.copy_(flat[offset:offset + n].view_as(t))
                offset += n


def allreduce_params(params: Iterable[torch.Tensor], coalesce: bool = True, bucket_size_mb: float = -1) -> None:
    """Average parameters (or buffers) over the ranks, in place; nothing to do in a single process.

    Args:
        params: parameters or buffers (``model.parameters()``, ``model.buffers()``).
        coalesce: all-reduce flattened buckets (one per dtype and device) instead of each tensor.
        bucket_size_mb: split each bucket into parts of at most this size (``-1``: no limit).

    Integer tensors get the floor of their mean.
    """
    world_size = get_dist_info()[1]
    if world_size == 1:
        return
    _allreduce_mean([p.data for p in params], world_size, coalesce, bucket_size_mb)


def allreduce_grads(params: Iterable[torch.nn.Parameter], coalesce: bool = True, bucket_size_mb: float = -1) -> None:
    """Average the gradients of ``params`` over the ranks, in place; nothing to do in a single process.

    Parameters without gradients or not requiring them are left out (every rank must have
    gradients for the same parameters).

    Args:
        params: the model's parameters.
        coalesce: all-reduce flattened buckets (one per dtype and device) instead of each gradient.
        bucket_size_mb: split each bucket into parts of at most this size (``-1``: no limit).
    """
    world_size = get_dist_info()[1]
    if world_size == 1:
        return
    grads = [p.grad.data for p in params if p.requires_grad and p.grad is not None]
    _allreduce_mean(grads, world_size, coalesce, bucket_size_mb)


__all__ = ["LAUNCHERS", "DistLaunchError", "allreduce_grads", "allreduce_params", "get_dist_info", "init_dist",
           "master_only"]
