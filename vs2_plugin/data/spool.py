"""In-memory media (an API request's base64 video) written to files the decoders can open.

The files live in one folder per process, ``<tmp>/vs2_media_<pid>_*``, named by their content so
that the same upload is written once. The folder is removed at exit; a process that could not
(killed, or a server stopped by a signal) leaves it behind, so a new folder first removes those
of processes that no longer run. While a process runs, its folder is kept under
:data:`SPOOL_LIMIT_BYTES` by removing the files used longest ago: a server answering requests
for days would otherwise keep every video it was ever sent.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

PREFIX = "vs2_media_"
SPOOL_LIMIT_BYTES = 2 * 1024**3  # well above one request's media, well below a day of uploads
#: a file used this recently may still be read by a request: kept even over the limit
IN_USE_S = 600.0
#: an orphan folder untouched this long is removed: a process of another PID namespace sharing
#: /tmp (another container) may run under a pid that is dead here
ORPHAN_IDLE_S = 3600.0

_folder: str | None = None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True


def _last_use(folder: Path) -> float:
    """When anything in ``folder`` (or the folder) was last written or used (mtime)."""
    times = [folder.stat().st_mtime] + [entry.stat().st_mtime for entry in os.scandir(folder)]
    return max(times)


def remove_orphans(root: str | Path, idle_s: float = ORPHAN_IDLE_S) -> list[Path]:
    """Remove the spool folders under ``root`` whose process no longer runs and that nothing
    used for ``idle_s`` seconds; returns them."""
    removed = []
    for entry in Path(root).glob(f"{PREFIX}*_*"):
        pid = entry.name[len(PREFIX) :].split("_", 1)[0]
        if not (entry.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid))):
            continue
        try:
            idle = time.time() - _last_use(entry) >= idle_s
        except OSError:
            continue  # removed meanwhile by another process
        if idle:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def folder() -> str:
    """This process's spool folder, made (and orphans removed) on first use."""
    global _folder
    if _folder is None or not os.path.isdir(_folder):
        root = tempfile.gettempdir()
        remove_orphans(root)
        _folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}_", dir=root)
        atexit.register(shutil.rmtree, _folder, True)
    return _folder


def trim(directory: str | Path, keep: str, limit: int, in_use_s: float = IN_USE_S) -> None:
    """Remove the least recently used files of ``directory`` until it holds at most ``limit``
    bytes; never ``keep`` nor a file used in the last ``in_use_s`` seconds (a request may read it)."""
    recent = time.time() - in_use_s
    files = []
    for entry in os.scandir(directory):
        if entry.is_file() and ".tmp-" not in entry.name:
            stat = entry.stat()
            files.append((stat.st_mtime_ns, entry.path, stat.st_size))
    total = sum(size for _, _, size in files)
    for used_ns, path, size in sorted(files):
        if total <= limit:
            break
        if path != keep and used_ns / 1e9 < recent:
            try:
                os.remove(path)
            except OSError:
                continue  # removed by another process of the same folder
            total -= size


def write(data: bytes, limit: int = SPOOL_LIMIT_BYTES) -> str:
    """A file holding ``data`` in this process's spool folder (reused when already written)."""
    directory = folder()
    path = os.path.join(directory, hashlib.sha256(data).hexdigest())
    if os.path.exists(path):
        os.utime(path)  # used now: the last to be trimmed
    else:
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        trim(directory, keep=path, limit=limit)
    return path


def uploaded_name(path: str) -> str | None:
    """How an error names the spooled file ``path`` to the client who sent it ("uploaded file
    (N bytes)"; its name here is a hash, its folder the server's), or ``None`` for any other path."""
    if _folder is None or os.path.dirname(os.path.abspath(str(path))) != os.path.abspath(_folder):
        return None
    try:
        size = f"{os.path.getsize(path):,} bytes"
    except OSError:
        size = "since removed"
    return f"uploaded file ({size})"
