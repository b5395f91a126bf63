"""What every mmcv hook class of this package shares: the switch between the shipped hook and mmcv's logic."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from fsm_trainer.hook import Hook as FsmHook
from fsm_trainer.mmcv.hook import _METHODS, Hook, MmcvCompatError, class_hook, overrides_any, unique_name
from fsm_trainer.priority import Priority

if TYPE_CHECKING:
    from fsm_trainer.context import RunContext

PACKAGE = __name__.rsplit(".", 1)[0]
"""The package the mmcv hook classes are defined in, and their public module."""


def shipped(name: str) -> Any:
    """A shipped hook factory by its public name in :mod:`fsm_trainer.hooks`.

    Read through the package's lazy ``__getattr__``, which also puts the function back as the
    package attribute when importing a submodule of the same name replaced it by the module.
    """
    import fsm_trainer.hooks as hooks

    return hooks.__getattr__(name)


def unwrap(model: Any) -> Any:
    """The model inside a data-parallel wrapper (``model.module``), else ``model``."""
    return getattr(model, "module", model)


class MappedHook(Hook):
    """An mmcv hook class that runs as a shipped fsm_trainer hook unless a subclass customises it.

    Subclasses give :meth:`fsm_factory` and list in ``customisable`` the methods besides the
    hook points whose override switches to the class path: mmcv's logic, re-implemented in the
    class, run by :func:`fsm_trainer.mmcv.hook.class_hook` (so ``super()`` calls work).
    ``class_path`` says whether that logic exists for the class.
    """

    default_priority: ClassVar[int] = int(Priority.NORMAL)
    customisable: ClassVar[tuple[str, ...]] = ()
    class_path: ClassVar[bool] = True
    _mapped: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ == PACKAGE or cls.__module__.startswith(f"{PACKAGE}."):
            cls._mapped = cls

    def fsm_factory(self, name: str, priority: int) -> Callable[[RunContext], FsmHook | list[FsmHook]]:
        """The shipped hook this instance runs as, named ``name`` at ``priority``."""
        raise NotImplementedError

    def customised(self) -> bool:
        """Whether this instance's class (or the instance) overrides what the shipped hook implements."""
        return overrides_any(self, self._mapped, (*_METHODS, *self.customisable))

    def uses_log_buffer(self) -> bool:
        """Whether the class path reads or writes ``runner.log_buffer`` (the run then feeds it ``log_vars``)."""
        return False

    def class_fsm(self, ctx: RunContext) -> FsmHook:
        """This instance as a class hook: mmcv's logic with the subclass's overrides."""
        if self.uses_log_buffer():
            _ = ctx.log_buffer
        made = class_hook(self, ctx)
        if not hasattr(self, "priority"):  # not registered on a runner: mmcv's priority for the class
            made = attrs.evolve(made, priority=self.default_priority)
        return made

    def to_fsm(self, ctx: RunContext) -> FsmHook | list[FsmHook]:
        if self.customised():
            if not self.class_path:
                msg = (f"{type(self).__name__} customises {self._mapped.__name__}, which runs here as "
                       f"fsm_trainer's shipped hook; subclass fsm_trainer.mmcv.Hook instead and implement the points")
                raise MmcvCompatError(msg)
            return self.class_fsm(ctx)
        priority = int(getattr(self, "priority", self.default_priority))
        name = unique_name(ctx, type(self).__name__)
        return self.fsm_factory(name, priority)(ctx)


__all__ = ["PACKAGE", "MappedHook", "shipped", "unwrap"]
