"""Where a run trains: the device, moving models and batches there, mixed precision, backend flags.

:func:`fsm_trainer.run` takes ``device=`` (default ``"auto"``) and, once per run, before any
checkpoint is loaded:

* resolves it (:func:`resolve_device`): ``"auto"`` is the device the model already sits on
  when that is an accelerator, else CUDA's ``LOCAL_RANK`` device in a distributed run, else
  CUDA's current device when CUDA is available, else the CPU; ``None`` moves nothing;
* moves the model there (:func:`place_model`; ``module.to`` keeps the parameters, so an
  optimizer built on them stays valid, and optimizer state it already holds follows);
* wraps the step functions so each batch is moved there before the step
  (:func:`batches_to`, :func:`move_batch`), with ``non_blocking=True`` for pinned sources.
  On the CPU, and with ``device=None``, the steps are not wrapped: no cost per batch.

For a config builder: :func:`loader_kwargs` (``pin_memory`` for CUDA), :func:`amp_from_config`
(mmcv's ``fp16`` key), :func:`apply_backend_flags` (``cudnn_benchmark``, ``allow_tf32``,
``matmul_precision``) and :func:`compile_options` (``run(..., compile=...)``), each with a
``check_*`` function returning path-named error messages.

>>> move_batch({"x": torch.ones(2), "meta": ["a", 1]}, "cpu")
{'x': tensor([1., 1.]), 'meta': ['a', 1]}
>>> loader_kwargs("cpu")
{}
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import itertools
import os
from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import attrs
import torch

from fsm_trainer.errors import FsmTrainerError

if TYPE_CHECKING:
    from fsm_trainer.hooks.optimizer import Amp
    from fsm_trainer.step import StepFn

AUTO = "auto"
"""``run(..., device=AUTO)``: see :func:`resolve_device`."""

DeviceLike = str | torch.device | None


class DeviceError(FsmTrainerError, ValueError):
    """A device, mixed-precision, backend or compile setting is invalid or unavailable here."""


# --------------------------------------------------------------------------- resolving


def _parse(device: Any, path: str) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        try:
            return torch.device(device)
        except (RuntimeError, ValueError):
            pass
    msg = f"{path}: expected 'auto', 'cpu', 'cuda', 'cuda:<index>', a torch.device or None, got {device!r}"
    raise DeviceError(msg)


def check_device(device: Any, path: str = "device") -> list[str]:
    """Error messages (empty: valid) for a ``device`` value; availability is checked at run time.

    >>> check_device("cuda:1"), check_device(None), check_device("gpu")[0][:30]
    ([], [], "device: expected 'auto', 'cpu'")
    """
    if device is None or device == AUTO:
        return []
    try:
        _parse(device, path)
    except DeviceError as exc:
        return [str(exc)]
    return []


def _local_rank() -> int | None:
    raw = os.environ.get("LOCAL_RANK")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def default_device(*, distributed: bool = False) -> torch.device:
    """CUDA's ``LOCAL_RANK`` device (distributed) or current device when CUDA is available, else the CPU.

    >>> default_device() == (torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available()
    ...                      else torch.device("cpu"))
    True
    """
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if distributed:
        rank = _local_rank()
        if rank is not None and 0 <= rank < torch.cuda.device_count():
            return torch.device("cuda", rank)
    return torch.device("cuda", torch.cuda.current_device())


def _model_device(model: Any) -> torch.device | None:
    """The one device all of ``model``'s parameters and buffers are on, if there is one."""
    if not isinstance(model, torch.nn.Module):
        return None
    devices = {t.device for t in itertools.chain(model.parameters(), model.buffers())}
    return devices.pop() if len(devices) == 1 else None


def _check_available(dev: torch.device, path: str) -> torch.device:
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            msg = f"{path}: {str(dev)!r} asked for, but CUDA is not available here (use 'cpu' or 'auto')"
            raise DeviceError(msg)
        count = torch.cuda.device_count()
        if dev.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        if dev.index >= count:
            msg = f"{path}: {str(dev)!r} asked for, but this process sees {count} CUDA device(s)"
            raise DeviceError(msg)
        return dev
    if dev.type not in ("cpu", "meta"):
        backend = getattr(torch, dev.type, None) or getattr(torch.backends, dev.type, None)
        available = getattr(backend, "is_available", None)
        if available is not None and not available():
            msg = f"{path}: {str(dev)!r} asked for, but {dev.type} is not available here"
            raise DeviceError(msg)
    return dev


def resolve_device(
    device: DeviceLike = AUTO, *, model: Any = None, distributed: bool = False, path: str = "device"
) -> torch.device | None:
    """The device a run trains on, or ``None`` for "move nothing".

    ``"auto"``: for an ``nn.Module`` model, the accelerator all its tensors are already on,
    else :func:`default_device`; without a module model (explicit step functions only),
    ``None``. ``"cuda"`` means the current CUDA device (``torch.cuda.current_device()``).

    Raises:
        DeviceError: an invalid value, or a device this process does not have.

    >>> resolve_device("cpu"), resolve_device(None), resolve_device("auto")
    (device(type='cpu'), None, None)
    """
    if device is None:
        return None
    if isinstance(device, str) and device == AUTO:
        if not isinstance(model, torch.nn.Module):
            return None
        on = _model_device(model)
        if on is not None and on.type not in ("cpu", "meta"):
            return on
        return default_device(distributed=distributed)
    return _check_available(_parse(device, path), path)


# --------------------------------------------------------------------------- moving


def _with_data(obj: Any, data: Any) -> Any:
    new = copy.copy(obj)
    if hasattr(new, "_data"):  # mmcv's DataContainer keeps its payload there (``data`` is read-only)
        new._data = data
    else:
        new.data = data
    return new


def _replace_fields(obj: Any, names: list[str], dev: torch.device) -> Any:
    new = copy.copy(obj)
    for n in names:
        object.__setattr__(new, n, _move(getattr(obj, n), dev))
    return new


_ATOMS = (str, bytes, int, float, bool, complex, type(None))


def _move(obj: Any, dev: torch.device) -> Any:
    cls = obj.__class__
    if isinstance(obj, torch.Tensor):
        return obj.to(dev, non_blocking=obj.device.type == "cpu" and dev.type != "cpu" and obj.is_pinned())
    if cls is tuple:
        return tuple([_move(v, dev) for v in obj])
    if cls is list:
        return [_move(v, dev) for v in obj]
    if cls is dict:
        return {k: _move(v, dev) for k, v in obj.items()}
    if isinstance(obj, (*_ATOMS, type)):
        return obj
    cpu_only = getattr(obj, "cpu_only", None)
    if cpu_only is not None and hasattr(obj, "data"):  # mmcv's DataContainer and look-alikes
        return obj if cpu_only else _with_data(obj, _move(obj.data, dev))
    to = getattr(obj, "to", None)
    if callable(to):
        return to(dev)
    if isinstance(obj, tuple):
        items = [_move(v, dev) for v in obj]
        return cls(*items) if hasattr(obj, "_fields") else cls(items)
    if isinstance(obj, MutableMapping):
        new = copy.copy(obj)
        for k, v in obj.items():
            new[k] = _move(v, dev)
        return new
    if isinstance(obj, Mapping):
        return {k: _move(v, dev) for k, v in obj.items()}
    if isinstance(obj, list):
        moved = copy.copy(obj)
        moved[:] = [_move(v, dev) for v in obj]
        return moved
    if dataclasses.is_dataclass(obj):
        return _replace_fields(obj, [f.name for f in dataclasses.fields(obj)], dev)
    if attrs.has(cls):
        return _replace_fields(obj, [a.name for a in attrs.fields(cls)], dev)
    return obj


def move_batch(batch: Any, device: DeviceLike) -> Any:
    """``batch`` with every tensor in it on ``device`` (``None``: ``batch`` itself).

    Tensors are found inside tuples, lists, dicts (and other mappings), namedtuples,
    dataclass and attrs records (copied, with their fields moved); other objects with a
    ``.to()`` method are moved by ``obj.to(device)``. mmcv ``DataContainer``-style objects
    (``.data`` and ``.cpu_only``) are kept as they are when ``cpu_only`` is true, else copied
    with their ``data`` moved. Anything else is returned unchanged. A pinned CPU tensor is
    copied with ``non_blocking=True``; a tensor already on ``device`` is not copied.

    >>> import collections
    >>> P = collections.namedtuple("P", "x y")
    >>> move_batch([P(torch.zeros(1), "id"), (torch.ones(1), 3)], torch.device("cpu"))
    [P(x=tensor([0.]), y='id'), (tensor([1.]), 3)]
    """
    if device is None:
        return batch
    if isinstance(device, str) and device == AUTO:
        msg = "move_batch: resolve 'auto' first (fsm_trainer.device.resolve_device)"
        raise DeviceError(msg)
    return _move(batch, _parse(device, "device"))


def batches_to(step: StepFn, device: torch.device | None) -> StepFn:
    """``step`` fed batches moved to ``device``; ``step`` itself when ``device`` is ``None`` or the CPU.

    Built once per run by :func:`fsm_trainer.run`; a CPU run's loaders give CPU batches, so no
    per-batch work is added there.
    """
    if device is None or device.type == "cpu":
        return step

    def moved(batch: Any) -> Any:
        return step(_move(batch, device))

    moved.__qualname__ = moved.__name__ = getattr(step, "__name__", None) or repr(step)
    moved.__wrapped__ = step  # type: ignore[attr-defined]
    moved.device = device  # type: ignore[attr-defined]
    return moved


def place_model(model: Any, device: torch.device | None, optimizer: Any = None) -> bool:
    """Move ``model`` to ``device`` (once, before checkpoints are loaded); ``True`` if it moved.

    ``module.to`` keeps every ``Parameter`` object, so an optimizer built on them stays valid;
    state the optimizer already holds (momentum buffers...) is moved with the parameters by
    reloading it (``Optimizer.load_state_dict`` puts each state on its parameter's device). A
    model sharded by FSDP and anything that is not an ``nn.Module`` are left alone.

    Raises:
        DeviceError: the move replaced the parameters (a device whose tensors cannot take the
            CPU tensors' place, e.g. ``meta``) while an optimizer was given.
    """
    if device is None or not isinstance(model, torch.nn.Module):
        return False
    from fsm_trainer.dist import is_fsdp

    if is_fsdp(model):
        return False
    if all(t.device == device for t in itertools.chain(model.parameters(), model.buffers())):
        return False
    before = list(model.parameters())
    model.to(device)
    optimizers = [o for o in (optimizer.values() if isinstance(optimizer, Mapping) else [optimizer]) if o is not None]
    if optimizers and any(a is not b for a, b in zip(before, model.parameters(), strict=True)):
        msg = (f"moving the model to {device} replaced its Parameter objects, so the optimizer no longer holds "
               "them; move the model and build the optimizer on it before run(), or pass device=None")
        raise DeviceError(msg)
    for opt in optimizers:
        if getattr(opt, "state", None) and hasattr(opt, "load_state_dict"):
            opt.load_state_dict(opt.state_dict())
    return True


def loader_kwargs(device: DeviceLike = AUTO) -> dict[str, Any]:
    """Extra ``DataLoader`` arguments for batches bound to ``device``: ``pin_memory=True`` for CUDA.

    Pinned batches are copied to the GPU asynchronously by the runner (``non_blocking=True``).
    ``"auto"`` means :func:`default_device`.
    """
    if device is None:
        return {}
    dev = default_device() if isinstance(device, str) and device == AUTO else _parse(device, "device")
    return {"pin_memory": True} if dev.type == "cuda" else {}


def device_scope(device: torch.device | None) -> Any:
    """A context making ``device`` CUDA's current device (memory statistics, ``empty_cache``); else a no-op."""
    if device is not None and device.type == "cuda":
        return torch.cuda.device(device)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------- mixed precision

_FP16_KEYS = ("loss_scale", "dtype")
# Arguments of mmcv's Fp16OptimizerHook that may sit in ``fp16`` too; they belong to the optimizer hook.
_OPTIMIZER_HOOK_KEYS = ("grad_clip", "coalesce", "bucket_size_mb", "distributed", "cumulative_iters")
_SCALER_KEYS = {"init_scale": "number", "growth_factor": "number", "backoff_factor": "number",
                "growth_interval": "int", "enabled": "bool"}
_DTYPE_NAMES = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
                "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _dtype(value: Any) -> torch.dtype | None:
    if value in (torch.float16, torch.bfloat16):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str):
        return _DTYPE_NAMES.get(value)
    return None


def check_fp16(fp16: Any, path: str = "fp16") -> list[str]:
    """Error messages (empty: valid) for mmcv's ``fp16`` config value.

    Keys: ``loss_scale`` (``"dynamic"``, a positive number, or a dict of ``GradScaler``
    arguments; default 512 as mmcv) and ``dtype`` (``"float16"``/``"bfloat16"``; default float16,
    bfloat16 on the CPU). The other ``Fp16OptimizerHook`` arguments are accepted and left to
    the optimizer hook.

    >>> check_fp16(dict(loss_scale="dynamic"))
    []
    >>> for e in check_fp16(dict(loss_scale=dict(init_scale=-1.0, grow=2))):
    ...     print(e)
    fp16.loss_scale.init_scale: must be a positive number, got -1.0
    fp16.loss_scale.grow: unknown key; allowed: init_scale, growth_factor, backoff_factor, growth_interval, enabled
    """
    if fp16 is None:
        return []
    if not isinstance(fp16, Mapping):
        return [f"{path}: must be a dict such as dict(loss_scale=512.0), or None, got {fp16!r}"]
    errors = []
    for k in fp16:
        if k not in _FP16_KEYS and k not in _OPTIMIZER_HOOK_KEYS:
            errors.append(f"{path}.{k}: unknown key; allowed: {', '.join((*_FP16_KEYS, *_OPTIMIZER_HOOK_KEYS))}")
    ls = fp16.get("loss_scale", 512.0)
    if isinstance(ls, Mapping):
        for k, v in ls.items():
            kind = _SCALER_KEYS.get(k)
            p = f"{path}.loss_scale.{k}"
            if kind is None:
                errors.append(f"{p}: unknown key; allowed: {', '.join(_SCALER_KEYS)}")
            elif kind == "bool" and not isinstance(v, bool):
                errors.append(f"{p}: must be true or false, got {v!r}")
            elif kind == "int" and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                errors.append(f"{p}: must be a positive int, got {v!r}")
            elif kind == "number" and (not _is_number(v) or v <= 0):
                errors.append(f"{p}: must be a positive number, got {v!r}")
    elif ls != "dynamic" and not (_is_number(ls) and ls > 0):
        errors.append(f"{path}.loss_scale: must be 'dynamic', a positive number or a dict of GradScaler "
                      f"arguments, got {ls!r}")
    if "dtype" in fp16 and fp16["dtype"] is not None and _dtype(fp16["dtype"]) is None:
        errors.append(f"{path}.dtype: must be 'float16' or 'bfloat16', got {fp16['dtype']!r}")
    return errors


def amp_from_config(fp16: Mapping[str, Any] | None, device: DeviceLike = AUTO, *, path: str = "fp16") -> Amp | None:
    """The :class:`~fsm_trainer.hooks.Amp` for mmcv's ``fp16`` config on ``device`` (``None`` without ``fp16``).

    On CUDA: float16 autocast and a ``GradScaler`` with the config's ``loss_scale`` (a static
    scale for a number, as mmcv; ``"dynamic"``; or the scaler's arguments). On the CPU, unless
    ``dtype`` says otherwise: bfloat16 autocast, which needs no loss scaling, so ``loss_scale``
    is not used; the returned ``Amp``'s :meth:`~fsm_trainer.hooks.Amp.describe` says so, and
    the optimizer hook logs it once per run. ``device=None`` (no movement) and ``"auto"``
    mean :func:`default_device`.

    Raises:
        DeviceError: :func:`check_fp16` errors, or a device type without autocast support here.

    >>> amp = amp_from_config(dict(loss_scale=512.0), "cpu")
    >>> amp.dtype, amp.uses_scaler
    (torch.bfloat16, False)
    >>> amp_from_config(dict(loss_scale=512.0, dtype="float16"), "cpu").static_scale
    512.0
    """
    if fp16 is None:
        return None
    errors = check_fp16(fp16, path)
    if errors:
        raise DeviceError("; ".join(errors))
    from fsm_trainer.hooks.optimizer import Amp

    auto = device is None or (isinstance(device, str) and device == AUTO)
    dev = default_device() if auto else _parse(device, "device")
    if dev.type not in ("cpu", "cuda"):
        msg = f"{path}: mixed precision runs on 'cpu' or 'cuda' here, not on {dev.type!r}"
        raise DeviceError(msg)
    loss_scale = fp16.get("loss_scale", 512.0)
    loss_scale = dict(loss_scale) if isinstance(loss_scale, Mapping) else loss_scale
    asked = _dtype(fp16.get("dtype")) if fp16.get("dtype") is not None else None
    note = ""
    if asked is None and dev.type == "cpu":
        asked = torch.bfloat16
        note = (f"{path} on the CPU: bfloat16 autocast instead of float16, without loss scaling "
                f"(loss_scale={loss_scale!r} is not used); set {path}.dtype='float16' for float16 with a GradScaler")
    return Amp(dev.type, asked, loss_scale, note=note)


# --------------------------------------------------------------------------- backend flags

_PRECISIONS = ("highest", "high", "medium")


def check_backend_flags(
    *, cudnn_benchmark: Any = None, allow_tf32: Any = None, matmul_precision: Any = None, path: str = ""
) -> list[str]:
    """Error messages (empty: valid) for the backend flags of :func:`apply_backend_flags`.

    >>> for e in check_backend_flags(cudnn_benchmark="yes", allow_tf32=False, matmul_precision="high"):
    ...     print(e)
    cudnn_benchmark: must be true or false, got 'yes'
    allow_tf32: false conflicts with matmul_precision='high' (which lets float32 matmuls use TF32); give one of them
    """
    errors = []
    for key, v in (("cudnn_benchmark", cudnn_benchmark), ("allow_tf32", allow_tf32)):
        if v is not None and not isinstance(v, bool):
            errors.append(f"{path}{key}: must be true or false, got {v!r}")
    if matmul_precision is not None and matmul_precision not in _PRECISIONS:
        errors.append(f"{path}matmul_precision: must be one of {', '.join(map(repr, _PRECISIONS))}, "
                      f"got {matmul_precision!r}")
    elif isinstance(allow_tf32, bool) and matmul_precision and allow_tf32 == (matmul_precision == "highest"):
        what = "lets float32 matmuls use TF32" if allow_tf32 is False else "keeps float32 matmuls in full precision"
        errors.append(f"{path}allow_tf32: {str(allow_tf32).lower()} conflicts with "
                      f"matmul_precision={matmul_precision!r} (which {what}); give one of them")
    return errors


def backend_flags() -> dict[str, Any]:
    """The current values of every flag :func:`apply_backend_flags` sets (for :func:`restore_backend_flags`)."""
    return {
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def restore_backend_flags(saved: Mapping[str, Any]) -> None:
    """Set the flags back to ``saved`` (from :func:`backend_flags` or :func:`apply_backend_flags`)."""
    torch.backends.cudnn.benchmark = saved["cudnn.benchmark"]
    torch.backends.cudnn.allow_tf32 = saved["cudnn.allow_tf32"]
    torch.set_float32_matmul_precision(saved["float32_matmul_precision"])
    torch.backends.cuda.matmul.allow_tf32 = saved["cuda.matmul.allow_tf32"]


def apply_backend_flags(
    *, cudnn_benchmark: bool | None = None, allow_tf32: bool | None = None, matmul_precision: str | None = None,
    path: str = "",
) -> dict[str, Any]:
    """Set the process-wide backend flags; ``None`` leaves a flag as it is. Returns the previous values.

    * ``cudnn_benchmark``: ``torch.backends.cudnn.benchmark`` (mmcv's config key). A seeded
      ``deterministic`` run turns it off again when the seed is set afterwards, as in mmcv.
    * ``allow_tf32``: TF32 in float32 matmuls and cuDNN convolutions
      (``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``).
    * ``matmul_precision``: ``torch.set_float32_matmul_precision`` (``"highest"``, ``"high"``,
      ``"medium"``); it must agree with ``allow_tf32`` when both are given.

    ``path`` prefixes the keys in error messages (e.g. ``"env_cfg."``).

    Raises:
        DeviceError: :func:`check_backend_flags` errors (nothing is set then).
    """
    errors = check_backend_flags(cudnn_benchmark=cudnn_benchmark, allow_tf32=allow_tf32,
                                 matmul_precision=matmul_precision, path=path)
    if errors:
        raise DeviceError("; ".join(errors))
    before = backend_flags()
    if cudnn_benchmark is not None:
        torch.backends.cudnn.benchmark = cudnn_benchmark
    if allow_tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        torch.backends.cudnn.allow_tf32 = allow_tf32
    if matmul_precision is not None:
        torch.set_float32_matmul_precision(matmul_precision)
    return before


# --------------------------------------------------------------------------- torch.compile


def _compile_keys() -> list[str]:
    return [p for p in inspect.signature(torch.compile).parameters if p != "model"]


def check_compile(value: Any, path: str = "compile") -> list[str]:
    """Error messages (empty: valid) for ``run(..., compile=...)``: a bool, ``None`` or ``torch.compile`` arguments.

    >>> check_compile(dict(mode="max-autotune")), check_compile(dict(fast=True))[0][:29]
    ([], 'compile.fast: unknown key; al')
    """
    if value is None or isinstance(value, bool):
        return []
    if not isinstance(value, Mapping):
        return [f"{path}: must be true, false or a dict of torch.compile arguments, got {value!r}"]
    allowed = _compile_keys()
    return [f"{path}.{k}: unknown key; allowed: {', '.join(allowed)}" for k in value if k not in allowed]


def compile_options(value: bool | Mapping[str, Any] | None, path: str = "compile") -> dict[str, Any] | None:
    """The ``torch.compile`` keyword arguments of a ``compile=`` value, or ``None`` for no compilation.

    Raises:
        DeviceError: :func:`check_compile` errors.
    """
    errors = check_compile(value, path)
    if errors:
        raise DeviceError("; ".join(errors))
    if not value:
        return None
    return {} if value is True else dict(value)


def compile_model(model: Any, value: bool | Mapping[str, Any] | None) -> Callable[[], None] | None:
    """Compile ``model``'s forward for a run; return the function undoing it (``None``: nothing compiled).

    The module's ``forward`` is replaced, on the instance, by ``torch.compile(model.forward,
    **options)``: every call of the module goes through it, also the ``self(x)`` inside an
    mmcv-style ``train_step`` and the calls made by a DistributedDataParallel wrapper, while
    the module keeps its class, its parameters and its ``state_dict`` keys (no ``_orig_mod.``
    prefix), so checkpoints and resuming are unchanged. (``nn.Module.compile()`` would do
    the same through ``_call_impl``, but some torch versions capture nothing that way for
    built-in modules such as ``nn.Sequential``.) The undo function puts the previous
    ``forward`` back; :func:`fsm_trainer.run` calls it when the run ends.

    Raises:
        DeviceError: invalid options, or a model that is not an ``nn.Module``.
    """
    options = compile_options(value)
    if options is None:
        return None
    if not isinstance(model, torch.nn.Module):
        msg = f"compile= needs an nn.Module model, got {type(model).__name__}"
        raise DeviceError(msg)
    had = "forward" in model.__dict__
    previous: Any = model.__dict__.get("forward")  # the instance's own forward, if it had one
    model.forward = torch.compile(model.forward, **options)

    def undo() -> None:
        if had:
            model.forward = previous
        else:
            model.__dict__.pop("forward", None)

    return undo


def unwrap_compiled(model: Any) -> Any:
    """The module inside a ``torch.compile(module)`` result (``OptimizedModule``), else ``model``.

    >>> m = torch.nn.Linear(1, 1)
    >>> unwrap_compiled(m) is m
    True
    """
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(model, torch.nn.Module) and isinstance(inner, torch.nn.Module) else model


__all__ = [
    "AUTO", "DeviceError", "DeviceLike", "amp_from_config", "apply_backend_flags", "backend_flags", "batches_to",
    "check_backend_flags", "check_compile", "check_device", "check_fp16", "compile_model", "compile_options",
    "default_device", "device_scope", "loader_kwargs", "move_batch", "place_model", "resolve_device",
    "restore_backend_flags", "unwrap_compiled",
]

