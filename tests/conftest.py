from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# The tests run their tiny models on one thread each: more only spin, and the suite's processes
# (pytest-xdist workers, torchrun ranks) share the machine's cores. Set before torch is imported,
# so every process the tests start inherits it.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _ram_dir(path: str = "/dev/shm", need: int = 2 << 30) -> bool:
    """Whether ``path`` is a writable directory with ``need`` bytes free (a container's default
    /dev/shm has 64 MiB)."""
    if not (os.path.isdir(path) and os.access(path, os.W_OK)):
        return False
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize >= need


# Checkpoints fsync each file they commit; on a disk that is most of a small run's time. Where
# the machine has a roomy RAM file system, the tests' temporary directories live there.
if "PYTEST_DEBUG_TEMPROOT" not in os.environ and _ram_dir():
    os.environ["PYTEST_DEBUG_TEMPROOT"] = "/dev/shm"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files holding ``slow`` tests first (each file stays whole and in order), so that the
    pytest-xdist workers, given whole files, do not end on a long one; skip tests marked ``gpu``
    where CUDA is not available."""
    import torch

    slow_files = {item.path for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.path not in slow_files)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marked gpu); this machine has none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cli_state() -> Iterator[None]:
    """For tests calling ``fsm_trainer.cli.main`` themselves: the interpreter state a command changes
    (the ``fsm_trainer`` logger and its console handler, signal handlers, ``sys.path``, modules of user
    code and their registrations, torch's flags and the random states) is given back after the test.
    ``_cli.run_cli`` does the same around each command."""
    from _cli import global_state_restored

    with global_state_restored():
        yield


@pytest.fixture(autouse=True)
def _loader_workers_shut_down() -> Iterator[None]:
    """DataLoader workers a test left running are shut down at its end, not (5 s later) in the
    next test that happens to run the garbage collector (``_workers.py``)."""
    yield
    from _workers import shut_down_loader_workers

    shut_down_loader_workers()
