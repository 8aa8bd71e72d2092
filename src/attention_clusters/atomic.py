"""Write outputs so that a killed or failed job never leaves a half file in place."""

import contextlib
import errno
import os
import tempfile
from pathlib import Path

# Write errors that mean there is no room for the output (a full disk, a quota, a file-size limit).
NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
ROOM_ADVICE = (
    "make room (free disk space, or raise the quota or file-size limit) and rerun: finished jobs are kept"
)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` when the block ends without
    an exception. A block that decides against its output deletes the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates 0600 files; outputs get the usual permissions (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
    except OSError as err:
        if err.filename is not None or err.errno not in NO_ROOM:
            raise
        # A failed write() names no file: name the output, so that the runner's one line says which.
        raise OSError(
            err.errno, f"{os.strerror(err.errno)} while writing it; {ROOM_ADVICE}", str(path)
        ) from err
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file for writing; it becomes `path` only if the block succeeds."""
    with atomic_path(path) as tmp:
        with open(tmp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
