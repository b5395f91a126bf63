"""mmcv's runner utilities: ``LogBuffer``, ``IterLoader``, ``set_random_seed``, ``get_host_info``,
``get_time_str`` and ``obj_from_dict``.

:class:`LogBuffer` and :class:`IterLoader` are fsm_trainer's own (:class:`fsm_trainer.logbuffer.LogBuffer`,
:class:`fsm_trainer.data.IterLoader`) with mmcv's attribute names added, so code and tests
written for ``mmcv.runner`` construct and read them as before.
"""

from __future__ import annotations

import getpass
import operator
import os
import socket
import time
import warnings
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from fsm_trainer.data import IterLoader as _IterLoader
from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.logbuffer import LogBuffer as _LogBuffer


class MiscArgumentError(FsmTrainerError, TypeError):
    """An argument of :class:`LogBuffer`, :func:`obj_from_dict` or :func:`set_random_seed` has the wrong type."""


class LogBuffer(_LogBuffer):
    """mmcv's ``LogBuffer``: histories of logged values and their count-weighted averages.

    ``update(vars, count)`` appends each value with weight ``count``; ``average(n)`` sets
    ``output[key]`` to the average of the latest ``n`` entries of the key's history (all of
    them for ``n == 0``), weighted by their counts, and ``ready`` to True; ``clear_output()``
    forgets the averages, ``clear()`` the histories too. ``val_history`` and ``n_history`` are
    the histories (``values`` and ``counts`` of :class:`fsm_trainer.logbuffer.LogBuffer`).
    Values may be numbers or one-element tensors; ``output`` holds Python floats (mmcv's are
    NumPy floats, which compare equal; over more than 8 entries NumPy's pairwise sum may differ
    from this sum in the last bit).

    >>> b = LogBuffer()
    >>> b.update({"loss": 1.0, "acc": 0.5}, count=1)
    >>> b.update({"loss": 4.0, "acc": 1.0}, count=3)
    >>> b.average()
    >>> b.ready, b.output["loss"], b.val_history["acc"], b.n_history["acc"]
    (True, 3.25, [0.5, 1.0], [1, 3])
    """

    __slots__ = ()

    @property
    def val_history(self) -> dict[str, list[Any]]:
        """Each key's logged values since the last :meth:`clear`, oldest first."""
        return self.values

    @val_history.setter
    def val_history(self, value: dict[str, list[Any]]) -> None:
        self.values = value

    @property
    def n_history(self) -> dict[str, list[Any]]:
        """Each key's counts (weights), aligned with :attr:`val_history`."""
        return self.counts

    @n_history.setter
    def n_history(self, value: dict[str, list[Any]]) -> None:
        self.counts = value

    def update(self, vars: Mapping[str, Any], count: Any = 1) -> None:
        """Append each value of ``vars`` with weight ``count``.

        Raises:
            MiscArgumentError: ``vars`` is not a dict.
        """
        if not isinstance(vars, Mapping):
            msg = f"LogBuffer.update: vars must be a dict of values, got {type(vars).__name__} {vars!r:.60}"
            raise MiscArgumentError(msg)
        super().update(vars, count)


class IterLoader(_IterLoader):
    """mmcv's ``IterLoader``: cycle over a data loader forever, counting the passes in ``epoch``.

    When a pass ends, ``epoch`` is incremented and the loader's sampler gets
    ``set_epoch(epoch)`` (when it has that method) before the next pass starts, as in mmcv
    (without its 2 s sleep). ``len()`` is the loader's length. mmcv's attribute names are
    kept: ``_dataloader`` (the loader), ``iter_loader`` (the current pass's iterator) and
    ``_epoch``.

    Args:
        dataloader: the loader (any iterable).
        epoch: the number of passes already made (``0`` as in mmcv).

    >>> it = IterLoader([1, 2])
    >>> [next(it) for _ in range(3)], it.epoch, it._epoch, len(it)
    ([1, 2, 1], 1, 1, 2)
    """

    __slots__ = ()

    def __init__(self, dataloader: Iterable[Any], epoch: int = 0) -> None:
        super().__init__(dataloader, epoch)

    @property
    def _dataloader(self) -> Any:
        return self.loader

    @property
    def iter_loader(self) -> Any:
        return self._it

    @iter_loader.setter
    def iter_loader(self, value: Any) -> None:
        self._it = value

    @property
    def _epoch(self) -> int:
        return self.epoch

    @_epoch.setter
    def _epoch(self, value: int) -> None:
        self.epoch = value

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]


def set_random_seed(seed: int, deterministic: bool = False, use_rank_shift: bool = False) -> None:
    """Seed Python's ``random``, NumPy and torch (every CUDA device too), as mmcv's ``set_random_seed``.

    Args:
        seed: the seed.
        deterministic: also set ``torch.backends.cudnn.deterministic = True`` and
            ``torch.backends.cudnn.benchmark = False`` (only these, as mmcv).
        use_rank_shift: add the process's rank to ``seed`` (a different seed per rank).

    ``PYTHONHASHSEED`` is set to the seed in the environment (for subprocesses; this process's
    string hashing does not change).

    Raises:
        MiscArgumentError: ``seed`` is not an int.
    """
    import torch

    from fsm_trainer.config.build import set_random_seed as _seed_all
    from fsm_trainer.dist import get_dist_info

    try:
        seed = operator.index(seed)
    except TypeError:
        msg = f"set_random_seed: seed must be an int, got {type(seed).__name__} {seed!r:.40}"
        raise MiscArgumentError(msg) from None
    if use_rank_shift:
        seed += get_dist_info()[0]
    _seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def get_host_info() -> str:
    """``'user@hostname'``, or ``''`` (with a warning) when either cannot be found (in some containers).

    >>> "@" in get_host_info()
    True
    """
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception as exc:  # getuser raises KeyError/OSError where the uid has no name
        warnings.warn(f"host or user name not found: {exc}", stacklevel=2)
        return ""


def get_time_str() -> str:
    """The local time as ``'YYYYmmdd_HHMMSS'`` (mmcv's log and work-dir timestamps).

    >>> len(get_time_str()), get_time_str()[8]
    (15, '_')
    """
    return time.strftime("%Y%m%d_%H%M%S", time.localtime())


def obj_from_dict(info: Mapping[str, Any], parent: ModuleType | Any = None,
                  default_args: Mapping[str, Any] | None = None) -> Any:
    """``info['type'](**rest)``, with ``default_args`` for the arguments ``info`` does not give (mmcv's).

    ``type`` is a class, or a name: an attribute of ``parent`` when given, else a module
    path and attribute (``'torch.optim.SGD'`` or ``'torch.optim:SGD'``).

    Raises:
        MiscArgumentError: ``info`` is not a dict with ``type``, ``default_args`` not a dict,
            ``type`` neither a name nor a class, or the name is not found.

    >>> import torch
    >>> obj_from_dict(dict(type="Linear", in_features=2), torch.nn, dict(out_features=3)).weight.shape
    torch.Size([3, 2])
    """
    if not isinstance(info, Mapping) or "type" not in info:
        msg = f"obj_from_dict: info must be a dict with a 'type' key, got {info!r:.80}"
        raise MiscArgumentError(msg)
    if default_args is not None and not isinstance(default_args, Mapping):
        msg = f"obj_from_dict: default_args must be a dict or None, got {type(default_args).__name__}"
        raise MiscArgumentError(msg)
    args = dict(info)
    kind = args.pop("type")
    if isinstance(kind, str):
        kind = _resolve(kind, parent)
    elif not isinstance(kind, type):
        msg = f"obj_from_dict: type must be a name or a class, got {type(kind).__name__} {kind!r:.60}"
        raise MiscArgumentError(msg)
    for name, value in (default_args or {}).items():
        args.setdefault(name, value)
    return kind(**args)


def _resolve(name: str, parent: Any) -> Any:
    if parent is not None:
        try:
            return getattr(parent, name)
        except AttributeError:
            where = getattr(parent, "__name__", repr(parent))
            msg = f"obj_from_dict: type {name!r} is not an attribute of {where}"
            raise MiscArgumentError(msg) from None
    from fsm_trainer.registry import RegistryError, import_path

    module, sep, attr = name.partition(":") if ":" in name else name.rpartition(".")
    if not sep or not module or not attr:
        msg = f"obj_from_dict: type {name!r} needs a parent module, or a path 'pkg.module.Name'"
        raise MiscArgumentError(msg)
    try:
        return import_path(f"{module}:{attr}", "obj_from_dict: type")
    except RegistryError as exc:
        raise MiscArgumentError(str(exc)) from None


__all__ = ["IterLoader", "LogBuffer", "MiscArgumentError", "get_host_info", "get_time_str", "obj_from_dict",
           "set_random_seed"]
