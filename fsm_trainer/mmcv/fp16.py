"""mmcv 1.7.2's fp16 utilities (``mmcv.runner.fp16_utils``) on current torch.

* :func:`auto_fp16` and :func:`force_fp32`: method decorators that act only when the module
  has ``fp16_enabled = True`` (set by :func:`wrap_fp16_model`). ``auto_fp16`` casts the named
  float32 tensor arguments to float16 and runs the method under ``torch.autocast`` with
  ``dtype=torch.float16`` on the device of its inputs (mmcv: ``torch.cuda.amp.autocast``,
  CUDA only; here the CPU autocasts too); ``force_fp32`` casts float16 arguments to float32
  and runs with autocast disabled.
* :func:`cast_tensor_type`: cast the tensors of a nested structure whose dtype is ``src_type``.
* :func:`wrap_fp16_model`: set ``fp16_enabled = True`` on every submodule that has the
  attribute. As mmcv on torch >= 1.6, the model is not converted to half precision: autocast
  does the mixed precision.
* :func:`patch_norm_fp32`: keep normalisation layers in float32 in a half-precision model.
* :class:`LossScaler`: mmcv's static or dynamic loss scale bookkeeping.

>>> import torch
>>> class Head(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.fp16_enabled = False
...     @auto_fp16(apply_to=("x",))
...     def forward(self, x, y):
...         return x.dtype, y.dtype
>>> head = Head()
>>> head(torch.ones(1), torch.ones(1))
(torch.float32, torch.float32)
>>> wrap_fp16_model(head)
>>> head(torch.ones(1), torch.ones(1))
(torch.float16, torch.float32)
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from fsm_trainer.errors import ArgumentTypeError, FsmTrainerError, MappingKeyError

F = TypeVar("F", bound=Callable[..., Any])


class Fp16UsageError(ArgumentTypeError):
    """:func:`auto_fp16` or :func:`force_fp32` decorates something that is not a method of a supported module."""


class LossScalerError(FsmTrainerError, ValueError):
    """A :class:`LossScaler` argument is invalid; the message names it and what is allowed."""


def cast_tensor_type(inputs: Any, src_type: torch.dtype, dst_type: torch.dtype) -> Any:
    """``inputs`` with every tensor of dtype ``src_type`` cast to ``dst_type``, recursively.

    Tensors of other dtypes, modules, strings and NumPy arrays are returned as they are;
    mappings and other iterables are rebuilt with their own type (a named tuple field by
    field); anything else is returned unchanged.

    >>> import torch
    >>> out = cast_tensor_type({"a": [torch.ones(1), torch.ones(1, dtype=torch.int64)]}, torch.float, torch.half)
    >>> [t.dtype for t in out["a"]]
    [torch.float16, torch.int64]
    """
    if isinstance(inputs, nn.Module):
        return inputs
    if isinstance(inputs, torch.Tensor):
        return inputs.to(dst_type) if inputs.dtype == src_type else inputs
    if isinstance(inputs, (str, bytes, np.ndarray)):
        return inputs
    if isinstance(inputs, Mapping):
        return type(inputs)({k: cast_tensor_type(v, src_type, dst_type) for k, v in inputs.items()})  # type: ignore[call-arg]
    if isinstance(inputs, tuple) and hasattr(inputs, "_fields"):
        return type(inputs)(*(cast_tensor_type(v, src_type, dst_type) for v in inputs))
    if isinstance(inputs, Iterable):
        return type(inputs)(cast_tensor_type(v, src_type, dst_type) for v in inputs)  # type: ignore[call-arg]
    return inputs


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def _device_type(module: nn.Module, args: Iterable[Any], kwargs: Mapping[str, Any]) -> str:
    """The device type of the first tensor argument, else of the module's first parameter, else ``"cpu"``."""
    for t in _tensors([list(args)[1:], dict(kwargs)]):
        return t.device.type
    for p in module.parameters():
        return p.device.type
    return "cpu"


def _cast_arguments(func: Callable[..., Any], apply_to: Iterable[str] | None, args: tuple[Any, ...],
                    kwargs: dict[str, Any], src: torch.dtype, dst: torch.dtype) -> tuple[list[Any], dict[str, Any]]:
    """Cast the arguments named in ``apply_to`` (all named ones when ``None``), as mmcv does.

    The names are those of ``func``'s own signature (``inspect.getfullargspec``): positional
    arguments beyond the named ones and keyword arguments not named are passed through uncast.
    """
    names = inspect.getfullargspec(func).args
    wanted = set(names if apply_to is None else apply_to)
    new_args = [cast_tensor_type(a, src, dst) if i < len(names) and names[i] in wanted else a
                for i, a in enumerate(args)]
    new_kwargs = {k: cast_tensor_type(v, src, dst) if k in wanted else v for k, v in kwargs.items()}
    return new_args, new_kwargs


def _check_owner(args: tuple[Any, ...], supported: tuple[type, ...], decorator: str, func: Callable[..., Any]) -> None:
    if not args or not isinstance(args[0], supported):
        got = type(args[0]).__name__ if args else "no arguments"
        names = ", ".join(t.__name__ for t in supported)
        msg = (f"@{decorator} decorates methods of {names} only; {func.__qualname__} was called on {got} "
               "(decorate a method of an nn.Module, or pass supported_types=)")
        raise Fp16UsageError(msg)


def auto_fp16(apply_to: Iterable[str] | None = None, out_fp32: bool = False,
              supported_types: tuple[type, ...] = (nn.Module,)) -> Callable[[F], F]:
    """mmcv's ``auto_fp16``: run a module method in float16 when the module has ``fp16_enabled = True``.

    When enabled, the float32 tensors among the arguments named in ``apply_to`` (every named
    argument when ``None``; default values are never cast) become float16, and the method runs
    under ``torch.autocast(device_type=<the inputs' device>, dtype=torch.float16)`` (no
    autocast on a device type that has none). Tensors of other dtypes are left as they are.

    Args:
        apply_to: the names of the arguments to cast.
        out_fp32: cast float16 tensors of the result back to float32.
        supported_types: the classes whose methods may be decorated.

    Raises:
        Fp16UsageError: when the decorated function is called on an object that is not an
            instance of ``supported_types`` (a ``TypeError``, as mmcv's).
    """
    names = None if apply_to is None else tuple(apply_to)

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _check_owner(args, supported_types, "auto_fp16", func)
            module = args[0]
            if not getattr(module, "fp16_enabled", False):
                return func(*args, **kwargs)
            new_args, new_kwargs = _cast_arguments(func, names, args, kwargs, torch.float, torch.half)
            device = _device_type(module, new_args, new_kwargs) if isinstance(module, nn.Module) else "cpu"
            if torch.amp.is_autocast_available(device):
                with torch.autocast(device_type=device, dtype=torch.float16, enabled=True):
                    output = func(*new_args, **new_kwargs)
            else:
                output = func(*new_args, **new_kwargs)
            return cast_tensor_type(output, torch.half, torch.float) if out_fp32 else output

        return wrapper  # type: ignore[return-value]

    return decorate


def force_fp32(apply_to: Iterable[str] | None = None, out_fp16: bool = False) -> Callable[[F], F]:
    """mmcv's ``force_fp32``: run a module method in float32 when the module has ``fp16_enabled = True``.

    When enabled, the float16 tensors among the arguments named in ``apply_to`` (every named
    argument when ``None``) become float32 and the method runs with autocast disabled, on the
    inputs' device type and on every device type where autocast is on.

    Args:
        apply_to: the names of the arguments to cast.
        out_fp16: cast float32 tensors of the result to float16.

    Raises:
        Fp16UsageError: when the decorated function is called on something that is not an
            ``nn.Module`` (a ``TypeError``, as mmcv's).
    """
    names = None if apply_to is None else tuple(apply_to)

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _check_owner(args, (nn.Module,), "force_fp32", func)
            module = args[0]
            if not getattr(module, "fp16_enabled", False):
                return func(*args, **kwargs)
            new_args, new_kwargs = _cast_arguments(func, names, args, kwargs, torch.half, torch.float)
            devices = {_device_type(module, new_args, new_kwargs)}
            devices |= {d for d in ("cpu", "cuda") if torch.is_autocast_enabled(d)}
            with contextlib.ExitStack() as stack:
                for d in sorted(devices):
                    if torch.amp.is_autocast_available(d):
                        stack.enter_context(torch.autocast(device_type=d, enabled=False))
                output = func(*new_args, **new_kwargs)
            return cast_tensor_type(output, torch.float, torch.half) if out_fp16 else output

        return wrapper  # type: ignore[return-value]

    return decorate


def wrap_fp16_model(model: nn.Module) -> None:
    """Set ``fp16_enabled = True`` on every module of ``model`` that has the attribute.

    As mmcv with torch >= 1.6: the weights stay float32 (autocast, in :func:`auto_fp16`, runs
    the operations in float16); use :func:`patch_norm_fp32` after ``model.half()`` for a
    model converted by hand.
    """
    for m in model.modules():
        if hasattr(m, "fp16_enabled"):
            setattr(m, "fp16_enabled", True)  # noqa: B010 (nn.Module's __setattr__ is typed for tensors and modules)


def _patch_forward(forward: Callable[..., Any], src: torch.dtype, dst: torch.dtype) -> Callable[..., Any]:
    def patched(*args: Any, **kwargs: Any) -> Any:
        out = forward(*cast_tensor_type(args, src, dst), **cast_tensor_type(kwargs, src, dst))
        return cast_tensor_type(out, dst, src)

    return patched


def patch_norm_fp32(module: nn.Module) -> nn.Module:
    """Keep the normalisation layers of ``module`` in float32 (mmcv's ``patch_norm_fp32``).

    Every batch norm and group norm is converted to float32; a group norm's ``forward`` is
    patched to take float16 inputs as float32 and return float16. Returns ``module``.

    >>> import torch
    >>> net = patch_norm_fp32(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.GroupNorm(1, 2)).half())
    >>> net[0].weight.dtype, net[1].weight.dtype, net[1](torch.ones(3, 2).half()).dtype
    (torch.float16, torch.float32, torch.float16)
    """
    if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
        module.float()
        if isinstance(module, nn.GroupNorm):
            module.forward = _patch_forward(module.forward, torch.half, torch.float)  # type: ignore[method-assign]
    for child in module.children():
        patch_norm_fp32(child)
    return module


class LossScaler:
    """mmcv's ``LossScaler``: a static or dynamic loss scale.

    Dynamic: each overflow divides the scale by ``scale_factor`` (never below 1); after
    ``scale_window`` iterations without one it is multiplied by ``scale_factor``. Static: the
    scale stays ``init_scale`` and overflows are not looked for.

    >>> s, scales = LossScaler(init_scale=8, scale_window=2), []
    >>> for overflow in (True, False, False, False):
    ...     s.update_scale(overflow)
    ...     scales.append(s.loss_scale)
    >>> scales
    [4.0, 4.0, 8.0, 8.0]

    Args:
        init_scale: the initial scale.
        mode: ``"dynamic"`` or ``"static"``.
        scale_factor: what the scale is divided or multiplied by.
        scale_window: iterations without overflow before the scale grows.

    Raises:
        LossScalerError: ``mode`` is not ``"dynamic"`` or ``"static"``.
    """

    def __init__(self, init_scale: float = 2**32, mode: str = "dynamic", scale_factor: float = 2.0,
                 scale_window: int = 1000) -> None:
        if mode not in ("dynamic", "static"):
            msg = f"LossScaler(mode={mode!r}): mode must be 'dynamic' or 'static'"
            raise LossScalerError(msg)
        self.cur_scale: float = init_scale
        self.cur_iter = 0
        self.mode = mode
        self.last_overflow_iter = -1
        self.scale_factor = scale_factor
        self.scale_window = scale_window

    def has_overflow(self, params: Iterable[torch.Tensor]) -> bool:
        """Whether a gradient of ``params`` holds an inf or a NaN (always ``False`` when static)."""
        if self.mode != "dynamic":
            return False
        return any(p.grad is not None and self._has_inf_or_nan(p.grad.data) for p in params)

    @staticmethod
    def _has_inf_or_nan(x: torch.Tensor) -> bool:
        """Whether ``x`` sums (in float32) to an inf or a NaN."""
        try:
            total = float(x.float().sum())
        except RuntimeError as exc:
            if "value cannot be converted" not in str(exc):
                raise
            return True
        return not math.isfinite(total)

    def update_scale(self, overflow: bool) -> None:
        """Update the scale after an iteration (nothing when static)."""
        if self.mode != "dynamic":
            return
        if overflow:
            self.cur_scale = max(self.cur_scale / self.scale_factor, 1)
            self.last_overflow_iter = self.cur_iter
        elif (self.cur_iter - self.last_overflow_iter) % self.scale_window == 0:
            self.cur_scale *= self.scale_factor
        self.cur_iter += 1

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state: ``cur_scale``, ``cur_iter``, ``mode``, ``last_overflow_iter``,
        ``scale_factor``, ``scale_window``."""
        return {
            "cur_scale": self.cur_scale, "cur_iter": self.cur_iter, "mode": self.mode,
            "last_overflow_iter": self.last_overflow_iter, "scale_factor": self.scale_factor,
            "scale_window": self.scale_window,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`.

        Raises:
            MappingKeyError: a key is missing (a ``KeyError``, as mmcv's).
            LossScalerError: ``mode`` is not ``"dynamic"``/``"static"``.
        """
        keys = ("cur_scale", "cur_iter", "mode", "last_overflow_iter", "scale_factor", "scale_window")
        missing = [k for k in keys if k not in state_dict]
        if missing:
            msg = f"LossScaler.load_state_dict: missing keys {missing}; a state has {list(keys)}"
            raise MappingKeyError(msg)
        if state_dict["mode"] not in ("dynamic", "static"):
            msg = f"LossScaler.load_state_dict: mode={state_dict['mode']!r} is not 'dynamic' or 'static'"
            raise LossScalerError(msg)
        self.cur_scale = state_dict["cur_scale"]
        self.cur_iter = state_dict["cur_iter"]
        self.mode = state_dict["mode"]
        self.last_overflow_iter = state_dict["last_overflow_iter"]
        self.scale_factor = state_dict["scale_factor"]
        self.scale_window = state_dict["scale_window"]

    @property
    def loss_scale(self) -> float:
        """The current scale."""
        return self.cur_scale


__all__ = [
    "Fp16UsageError",
    "LossScaler",
    "LossScalerError",
    "auto_fp16",
    "cast_tensor_type",
    "force_fp32",
    "patch_norm_fp32",
    "wrap_fp16_model",
]
