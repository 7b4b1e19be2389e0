"""Outputs that are complete or absent: every file a long job writes goes through this module.

:func:`atomic_path` yields a temporary name next to the target (``NAME.tmp-PID``) and renames it onto the target
only when the block finished, so a process killed at any moment leaves either the old file, the new file, or a
``*.tmp-*`` leftover that nothing reads (:func:`remove_leftovers` deletes them).
``atomic_write_bytes/text/json`` and :func:`atomic_save_npy` are built on it. A failed write (disk full,
read-only directory, permission) removes the temporary file and raises :class:`WriteError`: one line naming the
target and the reason. Guarantee: against the process dying (SIGKILL, OOM kill, Ctrl-C), not against a power
cut (no fsync: the rename is atomic for other processes, the data may not be on the disk yet).

:func:`read_jsonl` reads a JSON-lines file whose writer appends one line at a time: a last line without its
newline is a torn write (the writer was killed) and is dropped with a warning, never parsed.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

TMP_MARK = ".tmp-"
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class WriteError(ValueError):
    """An output could not be written (full disk, read-only or forbidden directory); the message is one line
    naming the path. A ValueError, so that every command reports it as its one-line error."""


def write_error(path: str | Path, e: BaseException) -> WriteError:
    reason = (os.strerror(e.errno) if isinstance(e, OSError) and e.errno in WRITE_ERRNOS else
              filesystem_problem(path) or str(e).splitlines()[0])
    return WriteError(f"{path}: cannot write ({reason}); no partial output will be used, rerun when fixed")


def filesystem_problem(path: str | Path) -> str | None:
    """"Read-only file system" / "No space left on device" when the file system holding ``path`` is so (for
    writers whose errors do not say it, e.g. ``torch.save``: "unexpected pos ...")."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return os.strerror(errno.EROFS)
    if st.f_bavail * st.f_frsize < (1 << 20):
        return os.strerror(errno.ENOSPC)
    return None


def is_write_failure(e: BaseException, path: str | Path | None = None) -> bool:
    """An OSError of the full-disk / read-only kind (anywhere in the cause chain: torch wraps them), or any
    error while the file system of ``path`` is read-only or (nearly) full."""
    first = e
    while e is not None:
        if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:
            return True
        if "No space left on device" in str(e) or "Read-only file system" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return path is not None and isinstance(first, Exception) and filesystem_problem(path) is not None


def temporary_name(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")


def remove_leftovers(folder: str | Path, pattern: str = "*") -> list[Path]:
    """Delete the temporary files/folders a killed writer left in ``folder`` (matching ``pattern``)."""
    gone = sorted(Path(folder).glob(pattern + TMP_MARK + "*")) if Path(folder).is_dir() else []
    for p in gone:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return gone


def _commit(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """``with atomic_path(p) as tmp: write tmp`` → ``p`` appears complete, or not at all (the old ``p`` stays)."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        _commit(tmp, path)
    except BaseException as e:
        failed = is_write_failure(e, path) and not isinstance(e, WriteError)  # before freeing the space
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if failed:
            raise write_error(path, e) from None
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj, **dumps) -> Path:
    return atomic_write_text(path, json.dumps(obj, **dumps))


def atomic_write_jsonl(path: str | Path, rows) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def atomic_save_npy(path: str | Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    return Path(path)


def read_jsonl(path: str | Path, what: str = "file") -> tuple[list[dict], bool]:
    """(rows, torn) of an appended JSON-lines file: a last line without its newline is dropped (warning on stderr);
    any other line that is not JSON is a ``ValueError`` naming the file and line."""
    raw = Path(path).read_bytes()
    lines = raw.split(b"\n")
    torn = lines[-1] != b""  # a complete file ends with a newline
    if torn:
        print(f"{path}: dropped a torn last line ({len(lines[-1])} bytes: the writer was interrupted); "
              "it is redone", file=sys.stderr)
    rows = []
    for i, line in enumerate(lines[:-1], 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{path}:{i}: not a JSON line in this {what}") from None
    return rows, torn


def append_line(f, line: str, path: str | Path) -> None:
    """Append one line and flush; a full disk / read-only error becomes one :class:`WriteError` line (a partial
    line it may leave is dropped by :func:`read_jsonl` on the next start)."""
    try:
        f.write(line + "\n")
        f.flush()
    except OSError as e:
        if is_write_failure(e):
            raise write_error(path, e) from None
        raise
