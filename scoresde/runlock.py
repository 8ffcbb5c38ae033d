"""Owning a run directory: one training process at a time, and what a killed owner left behind.

:class:`RunLock` takes an exclusive ``fcntl.flock`` on ``<run_dir>/train.lock`` without waiting.
The kernel drops the lock when its process ends, however it ends (return, exception, signal,
``SIGKILL``), so a dead process never holds it. The holder writes its identity (pid, host, start
time, command) into the file and deletes the file on release:

* a process that finds the lock taken stops with :class:`RunDirLocked` naming the holder;
* a process that gets the lock but finds an identity in the file knows that its writer ended
  without releasing it (it was killed) and says so in a warning;
* on taking the lock, the temporary files a killed writer may have left (``leftovers``, glob
  patterns in the run directory) are removed: only the holder writes them.

A process that opened the file just before its holder deleted it would lock a file no longer
in the directory; so after locking it checks that the path still names the file it locked, and
starts over if not.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO

LOCK_NAME = "train.lock"
UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)
"""``flock`` errors of file systems without locks: the run goes on unlocked, with a warning."""


class RunDirLocked(RuntimeError):
    """Another process holds the run directory's lock."""


def identity() -> dict:
    """This process as the lock file records it: pid, host, start time, command line."""
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": started,
            "command": " ".join(sys.argv)}


def describe(text: str) -> str:
    """``"pid 123 on host h, started 2025-01-01T10:00:00+00:00 (command)"`` from a lock file's text."""
    try:
        who = json.loads(text)
        return (f"pid {who['pid']} on host {who['host']}, started {who['started']} "
                f"({who['command']})")
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet written its identity" if not text.strip() else repr(text)


class RunLock:
    """The lock of ``run_dir`` (``enabled=False``: a no-op, for ranks other than 0).

    Re-entrant within one object: nested ``with lock:`` blocks take it once and release it when
    the outermost one ends. Another :class:`RunLock` on the same directory, even in this process,
    is refused while it is held.
    """

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, leftovers: Sequence[str] = ()):
        self.path, self.enabled, self.leftovers = Path(run_dir) / LOCK_NAME, enabled, tuple(leftovers)
        self._file: IO[str] | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._file is not None

    def __enter__(self) -> RunLock:
        if self._depth == 0 and self.enabled:
            self._acquire()
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0 and self._file is not None:
            self._release()

    def _acquire(self) -> None:
        """Lock without waiting; ``RunDirLocked`` naming the holder if another process has it."""
        while not self._try_acquire():
            pass
        self._remove_leftovers()

    def _try_acquire(self) -> bool:
        """One attempt; ``False`` if the file was deleted (by a releasing holder) meanwhile."""
        file = open(self.path, "a+")  # "a+" keeps the holder's identity readable
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = describe(file.read())
            file.close()
            raise RunDirLocked(f"run directory {self.path.parent} is in use: {holder} holds "
                               f"{self.path}; wait for it to end or stop it") from None
        except OSError as err:
            file.close()
            if err.errno not in UNSUPPORTED:
                raise
            warnings.warn(f"{self.path}: this file system cannot lock ({err}); nothing stops "
                          f"another process from training in {self.path.parent}", stacklevel=4)
            return True
        if not _names(self.path, file):
            file.close()
            return False
        file.seek(0)
        previous = file.read()
        if previous.strip():
            warnings.warn(f"{self.path}: taking over the lock of {describe(previous)}, which "
                          f"ended without releasing it (killed?)", stacklevel=4)
        file.seek(0)
        file.truncate()
        file.write(json.dumps(identity()))
        file.flush()
        self._file = file
        return True

    def _release(self) -> None:
        file, self._file = self._file, None
        with contextlib.suppress(OSError):
            self.path.unlink()
        file.close()  # closing the file drops the lock

    def _remove_leftovers(self) -> None:
        """Delete the files matching :attr:`leftovers` in the run directory."""
        for pattern in self.leftovers:
            for path in self.path.parent.glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _names(path: Path, file: IO[str]) -> bool:
    """Whether ``path`` is (still) the file open as ``file``."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(file.fileno())
    return (here.st_dev, here.st_ino) == (opened.st_dev, opened.st_ino)
