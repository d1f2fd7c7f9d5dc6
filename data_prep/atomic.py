"""
# Atomic file writes

A checkpoint, a results table or a figure is either the old file or the complete new
one, never half of either: we write to a temporary file in the same folder (so the
final rename stays on one file system), flush it to disk with `fsync`, and `os.replace`
it onto the target, which POSIX and Windows both do atomically. If anything fails before
the rename (a crash, Ctrl-C, a full disk, an object that cannot be serialized) the
temporary file is removed and the old file is untouched.
"""

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file next to `path`; on success it replaces `path` atomically.

    Usage: `with atomic_write("runs/a/last.pt") as f: torch.save(payload, f)`.
    Missing parent folders are created. `mode` is "wb" (bytes) or "w" (UTF-8 text).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; expected a file path to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if mode == "wb" else "utf-8"
        with os.fdopen(handle, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        _give_usual_permissions(temp_name, path)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_folder(path.parent)


def _give_usual_permissions(temp_name, path):
    """mkstemp makes the file private (0o600); give it the old file's mode or the umask's."""
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(temp_name, mode)


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def sweep_temporaries(folder):
    """Delete the temporary files that killed `atomic_write`s left in `folder` and below.

    A write killed before its rename (`kill -9`, a power cut) leaves `.NAME.XXXX.tmp`
    beside its target: never a half-written target, but litter. Call this where no write
    can be running (a training run starting or resuming in its own folder). Returns the
    paths deleted.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.rglob(".*.tmp") if p.is_file() and p.name.count(".") >= 3]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return stale
