"""Durable file writes under the data directory.

A document file exists under its final name only once it is complete and on
disk, so a row that points to it is never committed before the file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> int:
    """Write `data` to `path` through a temporary file, fsynced and renamed; return the size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return len(data)


def commit_file(temporary: Path, path: Path) -> None:
    """Fsync a finished file written elsewhere and move it to `path` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)
