"""Hook priorities with mmcv's names and values.

Lower values run first; hooks of equal priority keep their registration order.

>>> get_priority("normal")
50
>>> get_priority(Priority.HIGH)
30
>>> get_priority(7)
7
"""

from __future__ import annotations

import enum

from fsm_trainer.errors import HookError


class Priority(enum.IntEnum):
    """mmcv's named priority levels (``mmcv.runner.Priority``)."""

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 30
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


def get_priority(priority: int | str | Priority) -> int:
    """Return the integer value of ``priority``.

    Args:
        priority: an int in [0, 100], a :class:`Priority`, or a level name in any case.

    Raises:
        HookError: for an int outside [0, 100], an unknown name, or another type.
    """
    if isinstance(priority, Priority):
        return int(priority)
    if isinstance(priority, bool):  # bool is an int; a flag here is always a mistake
        msg = f"priority must be an int in [0, 100] or a level name, got {priority!r}"
        raise HookError(msg)
    if isinstance(priority, int):
        if not 0 <= priority <= 100:
            msg = f"priority must be in [0, 100], got {priority}"
            raise HookError(msg)
        return priority
    if isinstance(priority, str):
        try:
            return int(Priority[priority.upper()])
        except KeyError:
            names = ", ".join(p.name for p in Priority)
            msg = f"unknown priority name {priority!r}; allowed: {names}"
            raise HookError(msg) from None
    msg = f"priority must be an int, a Priority or a name, got {type(priority).__name__}"
    raise HookError(msg)
