"""Writing files so that a reader never sees half of one: write a temporary file beside it, then rename.

A crash or a kill while writing leaves the previous file (or none) in place, never a truncated one, because
``os.replace`` within one directory is atomic on POSIX and Windows.
"""

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``, on error it is removed.

    Example::

        with atomic_write("outputs/run/results.json") as f:
            json.dump(results, f)

    Args:
        path: the file to write.
        mode: "w" (text, with ``encoding``) or "wb" (bytes).
        encoding: the text encoding in mode "w".

    Yields:
        the open temporary file.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(descriptor, mode, **({"encoding": encoding} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, _mode_for(target))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _mode_for(target: Path) -> int:
    """The permissions ``target`` has, or those a new file gets under the umask (mkstemp's are owner-only)."""
    if target.exists():
        return target.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
