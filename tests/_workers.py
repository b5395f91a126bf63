"""DataLoader workers left running by a finished (or failed) run in the test process.

A run leaves its DataLoader iterator in a reference cycle; when the garbage collector frees it,
in whatever test runs at that moment, its workers take 5 s to shut down (the worker status
check interval). Shut down while the iterator is still reachable, they take milliseconds.
"""

from __future__ import annotations

import gc
import multiprocessing

_NOT_LOADER_WORKERS: set[int] = set()


def shut_down_loader_workers() -> int:
    """Shut down the workers of every live multi-process DataLoader iterator; returns how many iterators.

    Looks (a walk over the garbage collector's objects) only while a daemonic child process
    lives that is not known to be something else.
    """
    children = {p.pid for p in multiprocessing.active_children() if p.daemon and p.pid is not None}
    if not children - _NOT_LOADER_WORKERS:
        return 0
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

    found = [obj for obj in gc.get_objects() if type(obj) is _MultiProcessingDataLoaderIter]
    for it in found:
        it._shutdown_workers()
    _NOT_LOADER_WORKERS.update(p.pid for p in multiprocessing.active_children() if p.pid is not None)
    return len(found)
