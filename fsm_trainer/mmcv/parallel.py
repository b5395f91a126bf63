"""The names OpenMMLab 1.x training scripts import from ``mmcv.parallel``.

Change ``from mmcv.parallel import MMDataParallel, collate`` to
``from fsm_trainer.mmcv.parallel import MMDataParallel, collate``.

* :class:`DataContainer` and :func:`collate`: samples whose fields are padded and stacked
  (images of different sizes), kept as lists (boxes of different counts) or left on the CPU
  (image metadata), grouped per device (``samples_per_gpu``).
* :func:`scatter`, :func:`scatter_kwargs`: a collated batch for one device: tensors moved
  there, :class:`DataContainer` unwrapped (``cpu_only`` ones not moved).
* :class:`MMDataParallel`: training on the CPU or on one GPU; ``train_step``/``val_step``/
  ``forward`` unwrap the batch and call the wrapped model's.
* :class:`MMDistributedDataParallel`: :class:`~torch.nn.parallel.DistributedDataParallel`
  whose ``train_step``/``val_step`` run the wrapped model's through DDP's forward, so that
  the backward pass synchronises gradients.
* :func:`is_module_wrapper`, :data:`MODULE_WRAPPERS`: ``model.module`` is the model inside a wrapper.

Only one device per process is supported (as with DistributedDataParallel in current
PyTorch); several GPUs train with :class:`MMDistributedDataParallel`, one process per GPU.

>>> import torch
>>> batch = collate([{"img": DataContainer(torch.zeros(3, 2, 4), stack=True)},
...                  {"img": DataContainer(torch.ones(3, 4, 3), stack=True)}], samples_per_gpu=2)
>>> batch["img"].data[0].shape
torch.Size([2, 3, 4, 4])
>>> inputs, kwargs = scatter_kwargs((), batch, [-1])
>>> kwargs[0]["img"].shape
torch.Size([2, 3, 4, 4])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel
from torch.utils.data.dataloader import default_collate

from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.mmcv.registry import Registry


class ParallelError(FsmTrainerError, ValueError):
    """A batch, a device list or a wrapper argument ``mmcv.parallel`` cannot take; the message says why."""


class DeviceMismatchError(ParallelError, RuntimeError):
    """The wrapped module is not on the device the wrapper runs on."""


class NotATensorError(FsmTrainerError, AttributeError):
    """``size()`` or ``dim()`` of a :class:`DataContainer` that does not hold a tensor."""


# --------------------------------------------------------------------------- DataContainer


_F = TypeVar("_F", bound=Callable[..., Any])


def _tensor_only(fn: _F) -> _F:
    @functools.wraps(fn)
    def wrapper(self: DataContainer, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(self.data, torch.Tensor):
            msg = f"{type(self).__name__} has no attribute {fn.__name__} for type {self.datatype}"
            raise NotATensorError(msg)
        return fn(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class DataContainer:
    """One field of a sample, with how :func:`collate` and :func:`scatter` treat it (mmcv's).

    Args:
        data: a tensor, an array, or any object (image metadata).
        stack: :func:`collate` pads the tensors of a device's samples to a common size and
            stacks them; otherwise it keeps them as a list (boxes of different counts).
        padding_value: the value of the padding.
        cpu_only: never moved to a device (metadata); :func:`scatter` unwraps it only.
        pad_dims: how many trailing dimensions are padded (1, 2 or 3), or ``None`` for no
            padding (the tensors must have the same shape).

    Raises:
        ParallelError: ``pad_dims`` is not ``None``, 1, 2 or 3.

    >>> dc = DataContainer(torch.zeros(3, 4, 5), stack=True)
    >>> dc.size(), dc.dim(), dc.datatype, len(dc)
    (torch.Size([3, 4, 5]), 3, 'torch.FloatTensor', 3)
    >>> DataContainer([{"filename": "a.jpg"}], cpu_only=True)
    DataContainer([{'filename': 'a.jpg'}])
    """

    def __init__(self, data: Any, stack: bool = False, padding_value: int | float = 0, cpu_only: bool = False,
                 pad_dims: int | None = 2) -> None:
        if pad_dims not in (None, 1, 2, 3):
            msg = f"pad_dims={pad_dims!r}; allowed: None, 1, 2, 3"
            raise ParallelError(msg)
        self._data = data
        self._stack = stack
        self._padding_value = padding_value
        self._cpu_only = cpu_only
        self._pad_dims = pad_dims

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.data!r})"

    def __len__(self) -> int:
        return len(self._data)

    @property
    def data(self) -> Any:
        """The object held."""
        return self._data

    @property
    def datatype(self) -> Any:
        """The tensor's type string (``'torch.FloatTensor'``), else the data's class."""
        return self.data.type() if isinstance(self.data, torch.Tensor) else type(self.data)

    @property
    def cpu_only(self) -> bool:
        return self._cpu_only

    @property
    def stack(self) -> bool:
        return self._stack

    @property
    def padding_value(self) -> int | float:
        return self._padding_value

    @property
    def pad_dims(self) -> int | None:
        return self._pad_dims

    @_tensor_only
    def size(self, *args: Any, **kwargs: Any) -> Any:
        """The tensor's ``size(...)``.

        Raises:
            NotATensorError: the data is not a tensor (an ``AttributeError``, as mmcv's).
        """
        return self.data.size(*args, **kwargs)

    @_tensor_only
    def dim(self) -> int:
        """The tensor's number of dimensions.

        Raises:
            NotATensorError: the data is not a tensor.
        """
        return int(self.data.dim())


# --------------------------------------------------------------------------- collate


def _chunks(batch: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (batch[i:i + size] for i in range(0, len(batch), size))


def _pad_and_stack(samples: Sequence[DataContainer], where: str) -> Any:
    first = samples[0]
    for s in samples:
        if not isinstance(s.data, torch.Tensor):
            msg = f"{where}: a stacked DataContainer must hold a tensor, got {type(s.data).__name__}"
            raise ParallelError(msg)
    pad_dims = first.pad_dims
    if pad_dims is None:
        shapes = {tuple(s.data.shape) for s in samples}
        if len(shapes) > 1:
            msg = f"{where}: tensors of shapes {sorted(shapes)} cannot be stacked with pad_dims=None"
            raise ParallelError(msg)
        return default_collate([s.data for s in samples])
    ndim = first.dim()
    if ndim <= pad_dims:
        msg = f"{where}: a tensor of {ndim} dimensions cannot be padded in its last pad_dims={pad_dims}"
        raise ParallelError(msg)
    lead = tuple(first.data.shape[: ndim - pad_dims])
    for s in samples:
        if s.data.dim() != ndim or tuple(s.data.shape[: ndim - pad_dims]) != lead:
            msg = (f"{where}: samples of shapes {tuple(first.data.shape)} and {tuple(s.data.shape)} differ outside "
                   f"the last pad_dims={pad_dims} dimensions, so they cannot be padded to one size")
            raise ParallelError(msg)
    target = [max(int(s.data.shape[d]) for s in samples) for d in range(ndim - pad_dims, ndim)]
    padded = []
    for s in samples:
        pad: list[int] = []
        for d in range(ndim - 1, ndim - pad_dims - 1, -1):  # F.pad lists the last dimension first
            pad += [0, target[d - (ndim - pad_dims)] - int(s.data.shape[d])]
        padded.append(F.pad(s.data, pad, value=s.padding_value))
    return default_collate(padded)


def collate(batch: Sequence[Any], samples_per_gpu: int = 1, _where: str = "batch") -> Any:
    """Collate samples into a batch, as mmcv's ``collate`` (``default_collate`` with :class:`DataContainer`).

    A field of :class:`DataContainer` becomes one :class:`DataContainer` whose data is a
    list with one entry per device (``samples_per_gpu`` samples each, the last may have
    fewer): for ``cpu_only`` fields the list of the samples' data; for ``stack`` fields one
    tensor, the samples padded (right/bottom, by each sample's ``padding_value``) in their
    last ``pad_dims`` dimensions to the largest and stacked; otherwise the list of the
    samples' data. Sequences (not strings) collate field by field into a list, mappings key
    by key into a dict; anything else goes to ``torch.utils.data.default_collate``.

    Raises:
        ParallelError: an empty batch, ``samples_per_gpu`` below 1, or stacked tensors that
            cannot be padded to one shape.
    """
    if isinstance(batch, (str, bytes)) or not isinstance(batch, Sequence):
        msg = f"{_where}: collate takes a sequence of samples, got {type(batch).__name__}"
        raise ParallelError(msg)
    if not batch:
        msg = f"{_where}: collate got no samples"
        raise ParallelError(msg)
    if not isinstance(samples_per_gpu, int) or samples_per_gpu < 1:
        msg = f"samples_per_gpu={samples_per_gpu!r}; must be an int of at least 1"
        raise ParallelError(msg)
    first = batch[0]
    if isinstance(first, DataContainer):
        if first.cpu_only:
            data = [[s.data for s in c] for c in _chunks(batch, samples_per_gpu)]
            return DataContainer(data, first.stack, first.padding_value, cpu_only=True)
        if first.stack:
            data = [_pad_and_stack(c, _where) for c in _chunks(batch, samples_per_gpu)]
        else:
            data = [[s.data for s in c] for c in _chunks(batch, samples_per_gpu)]
        return DataContainer(data, first.stack, first.padding_value)
    if isinstance(first, Sequence) and not isinstance(first, (str, bytes)):
        lengths = sorted({len(s) for s in batch})
        if len(lengths) > 1:
            msg = f"{_where}: samples are sequences of different lengths {lengths}; cannot collate them field by field"
            raise ParallelError(msg)
        fields = zip(*batch, strict=True)
        return [collate(list(field), samples_per_gpu, f"{_where}[{i}]") for i, field in enumerate(fields)]
    if isinstance(first, Mapping):
        return {k: collate([s[k] for s in batch], samples_per_gpu, f"{_where}[{k!r}]") for k in first}
    return default_collate(list(batch))


# --------------------------------------------------------------------------- scatter


def _device(target_gpus: Sequence[int | torch.device]) -> torch.device | None:
    """The one device of ``target_gpus``: ``None`` for ``[-1]`` (the CPU: nothing is moved)."""
    gpus = list(target_gpus)
    if len(gpus) != 1:
        msg = (f"target_gpus={gpus!r}: scatter sends a batch to one device ([-1] for the CPU, [i] for GPU i); "
               "train on several GPUs with MMDistributedDataParallel, one process per GPU")
        raise ParallelError(msg)
    g = gpus[0]
    if isinstance(g, torch.device):
        return None if g.type == "cpu" else g
    if isinstance(g, bool) or not isinstance(g, int) or g < -1:
        msg = f"target_gpus={gpus!r}: a device is a GPU index or -1 for the CPU"
        raise ParallelError(msg)
    return None if g == -1 else torch.device("cuda", g)


def _move(obj: Any, device: torch.device | None) -> Any:
    if device is None:
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, list):
        return [_move(v, device) for v in obj]
    if isinstance(obj, tuple):
        items = [_move(v, device) for v in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, dict):
        return {k: _move(v, device) for k, v in obj.items()}
    return obj


def _unwrap(dc: DataContainer) -> Any:
    data = dc.data
    if not isinstance(data, list):
        return data
    if len(data) > 1:
        msg = (f"a DataContainer collated for {len(data)} devices was sent to one device; collate the batch with "
               f"samples_per_gpu equal to its size (mmcv 1.7.2 silently keeps only the first chunk)")
        raise ParallelError(msg)
    return data[0] if data else data


def _scatter_one(obj: Any, device: torch.device | None) -> Any:
    if isinstance(obj, torch.Tensor):
        return _move(obj, device)
    if isinstance(obj, DataContainer):
        data = _unwrap(obj)
        return data if obj.cpu_only else _move(data, device)
    if isinstance(obj, tuple):
        items = [_scatter_one(v, device) for v in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, list):
        return [_scatter_one(v, device) for v in obj]
    if isinstance(obj, dict):
        items = [(k, _scatter_one(v, device)) for k, v in obj.items()]
        try:
            return type(obj)(items)
        except TypeError:
            return dict(items)
    return obj


def scatter(inputs: Any, target_gpus: Sequence[int | torch.device], dim: int = 0) -> list[Any]:
    """``inputs`` for the one device of ``target_gpus`` (``[-1]``: the CPU), as a list of one entry.

    Tensors (in tuples, lists and dicts) are moved there; a :class:`DataContainer` is
    replaced by its data (for a collated one, its only device chunk), moved unless
    ``cpu_only``. ``dim`` is accepted as mmcv's (one device: nothing is split).

    Raises:
        ParallelError: ``target_gpus`` names several devices, or a :class:`DataContainer` was
            collated for several.
    """
    del dim
    return [_scatter_one(inputs, _device(target_gpus))]


def scatter_kwargs(inputs: Any, kwargs: Any, target_gpus: Sequence[int | torch.device],
                   dim: int = 0) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """:func:`scatter` of positional and keyword arguments: ``((args,), (kwargs,))`` as mmcv's.

    >>> scatter_kwargs((1, DataContainer([["meta"]], cpu_only=True)), {"x": 2}, [-1])
    (((1, ['meta']),), ({'x': 2},))
    """
    ins = scatter(inputs, target_gpus, dim) if inputs else []
    kws = scatter(kwargs, target_gpus, dim) if kwargs else []
    ins += [() for _ in range(len(kws) - len(ins))]
    kws += [{} for _ in range(len(ins) - len(kws))]
    return tuple(ins), tuple(kws)


# --------------------------------------------------------------------------- wrappers


def _cpu_requested(device_ids: Sequence[Any] | None) -> bool:
    if device_ids is None:
        return False
    ids = list(device_ids)
    return ids == [-1] or (len(ids) == 1 and isinstance(ids[0], torch.device) and ids[0].type == "cpu")


class MMDataParallel(DataParallel):  # type: ignore[type-arg]
    """mmcv's ``MMDataParallel``: a model on the CPU or one GPU, fed collated batches.

    ``train_step``, ``val_step`` and ``forward`` unwrap :class:`DataContainer` (see
    :func:`scatter`), move tensors to the device and call the wrapped model's method;
    :attr:`module` is the wrapped model.

    Args:
        module: the model (with ``train_step``/``val_step`` for a runner).
        device_ids: ``[i]``: GPU ``i`` (the model is moved there); ``None`` or ``[-1]``:
            the CPU where no GPU is available (``None`` with GPUs available: all of them, as
            DataParallel, which is refused if there are several).
        output_device: as DataParallel's.
        dim: as DataParallel's (one device: nothing is split).

    Raises:
        ParallelError: several devices.
        DeviceMismatchError: (at a step) the model is not on its device.
    """

    def __init__(self, module: nn.Module, device_ids: Sequence[int | torch.device] | None = None,
                 output_device: int | torch.device | None = None, dim: int = 0) -> None:
        if _cpu_requested(device_ids):
            nn.Module.__init__(self)
            self.module = module
            self.device_ids = []
        else:
            super().__init__(module, device_ids=device_ids, output_device=output_device, dim=dim)
        self.dim = dim
        if len(self.device_ids) > 1:
            msg = (f"MMDataParallel device_ids={self.device_ids}: it trains on one device; pass device_ids=[0], "
                   "or train on several GPUs with MMDistributedDataParallel, one process per GPU")
            raise ParallelError(msg)

    def scatter(self, inputs: Any, kwargs: Any, device_ids: Sequence[int | torch.device]) -> Any:
        return scatter_kwargs(inputs, kwargs, device_ids, dim=self.dim)

    def _prepared(self, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self.device_ids:
            src = self.src_device_obj
            for t in chain(self.module.parameters(), self.module.buffers()):
                if t.device != src:
                    msg = (f"MMDataParallel: the module must have its parameters and buffers on {src} "
                           f"(device_ids[0]), found one on {t.device}")
                    raise DeviceMismatchError(msg)
        ins, kws = self.scatter(inputs, kwargs, self.device_ids or [-1])
        if not ins:
            return (), {}
        return tuple(ins[0]), dict(kws[0])

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        args, kw = self._prepared(inputs, kwargs)
        return self.module(*args, **kw)

    def train_step(self, *inputs: Any, **kwargs: Any) -> Any:
        """The wrapped model's ``train_step`` on the unwrapped batch."""
        args, kw = self._prepared(inputs, kwargs)
        return self.module.train_step(*args, **kw)

    def val_step(self, *inputs: Any, **kwargs: Any) -> Any:
        """The wrapped model's ``val_step`` on the unwrapped batch."""
        args, kw = self._prepared(inputs, kwargs)
        return self.module.val_step(*args, **kw)


class MMDistributedDataParallel(DistributedDataParallel):
    """mmcv's ``MMDistributedDataParallel``: DDP with ``train_step`` and ``val_step``.

    The batch is unwrapped (:func:`scatter`: :class:`DataContainer` replaced by its data,
    tensors moved to ``device_ids[0]``; on the CPU, ``device_ids=None``, nothing is moved);
    then the wrapped model's ``train_step``/``val_step`` runs inside DDP's ``forward`` (in
    place of the model's ``forward``), so DDP prepares the backward pass that averages the
    gradients over the ranks, as for any forward. The step may call the model itself
    (``self(**data)``): that is its plain ``forward``. ``forward`` unwraps the batch too.
    Construct it as DistributedDataParallel (``find_unused_parameters``,
    ``broadcast_buffers``...).
    """

    _step_name: str | None = None

    def _target(self) -> list[int]:
        return [int(self.device_ids[0])] if self.device_ids else [-1]

    def to_kwargs(self, inputs: Any, kwargs: Any, device_id: int) -> Any:
        return scatter_kwargs(inputs, kwargs, [device_id], dim=self.dim)

    def scatter(self, inputs: Any, kwargs: Any, device_ids: Sequence[int]) -> Any:
        return scatter_kwargs(inputs, kwargs, device_ids, dim=self.dim)

    def _unwrapped(self, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        ins, kws = scatter_kwargs(inputs, kwargs, self._target(), dim=self.dim)
        if not ins:
            return (), {}
        return tuple(ins[0]), dict(kws[0])

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        args, kw = self._unwrapped(inputs, kwargs)
        return super().forward(*args, **kw)  # type: ignore[no-untyped-call]

    def _run_step(self, name: str, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        args, kw = self._unwrapped(inputs, kwargs)
        if getattr(self, "_delay_all_reduce_all_params", False):
            # Every gradient is all-reduced after backward whatever the forward: no bookkeeping to do.
            return getattr(self.module, name)(*args, **kw)
        object.__setattr__(self, "_step_name", name)
        try:
            return DistributedDataParallel.forward(self, *args, **kw)  # type: ignore[no-untyped-call]
        finally:
            object.__setattr__(self, "_step_name", None)

    def _run_ddp_forward(self, *inputs: Any, **kwargs: Any) -> Any:
        name = self._step_name
        if name is None:
            return super()._run_ddp_forward(*inputs, **kwargs)  # type: ignore[no-untyped-call]
        object.__setattr__(self, "_step_name", None)  # forward calls made by the step itself are plain
        step = getattr(self.module, name)
        inside = getattr(self, "_inside_ddp_forward", None)
        if inside is None or getattr(self, "_use_python_reducer", False):
            return step(*inputs, **kwargs)
        with inside():
            return step(*inputs, **kwargs)

    def train_step(self, *inputs: Any, **kwargs: Any) -> Any:
        """The wrapped model's ``train_step`` through DDP's forward (gradients synchronised in backward)."""
        return self._run_step("train_step", inputs, kwargs)

    def val_step(self, *inputs: Any, **kwargs: Any) -> Any:
        """The wrapped model's ``val_step`` through DDP's forward."""
        return self._run_step("val_step", inputs, kwargs)


# --------------------------------------------------------------------------- module wrappers


MODULE_WRAPPERS = Registry("module wrapper")
"""The module wrapper classes: a model inside one of them (or a subclass) is its ``.module``."""
for _wrapper in (DataParallel, DistributedDataParallel, MMDataParallel, MMDistributedDataParallel):
    MODULE_WRAPPERS.register_module(module=_wrapper)


def is_module_wrapper(module: Any) -> bool:
    """Whether ``module`` is an instance of a class of :data:`MODULE_WRAPPERS` (or of a subclass).

    >>> model = torch.nn.Linear(1, 1)
    >>> is_module_wrapper(MMDataParallel(model, device_ids=[-1])), is_module_wrapper(model)
    (True, False)
    """
    classes = tuple(c for c in MODULE_WRAPPERS.module_dict.values() if isinstance(c, type))
    return isinstance(module, classes)


__all__ = [
    "MODULE_WRAPPERS", "DataContainer", "DeviceMismatchError", "MMDataParallel", "MMDistributedDataParallel",
    "NotATensorError", "ParallelError", "collate", "is_module_wrapper", "scatter", "scatter_kwargs",
]
