"""One owner per SQLite file: an exclusive ``flock`` on ``<file>.lock``, held while serving.

The OS drops the lock when its holder dies, SIGKILL included, so a restart after a crash
takes over at once, while a second ``relay serve`` beside a live one is refused, naming the
holder's pid, before it can void the first one's leases.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from relay.store.base import StoreInUse


class OwnerLock:
    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    @classmethod
    def take(cls, store_file: Path) -> OwnerLock:
        path = store_file.with_name(store_file.name + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StoreInUse(f"{store_file.resolve()} is already served by another relay "
                             f"(pid {holder}, lock {path}); one relay serves one SQLite file "
                             "(PostgreSQL takes several)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        # The file stays: removing it would let a third process lock a fresh inode while a
        # second still waits on the old one.
        with contextlib.suppress(OSError):
            os.close(self._fd)
