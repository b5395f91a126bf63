"""Durability: making a directory's entries (a rename, a new file) survive a power loss."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    """fsync the directory ``path`` itself (its list of entries); a no-op where the file system cannot."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
