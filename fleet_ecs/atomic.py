"""Atomic file replacement: readers see the old file or the whole new one, never half.

Every file is written to a temporary file in the same folder and then moved over the old one
with ``os.replace``, which is atomic on one file system. Host results are the run's source of
truth and are made ``durable`` (fsync before the rename), so a crash or a power cut cannot leave
an empty result behind; derived reports skip the fsync, since they can always be rebuilt and
thousands of fsyncs would dominate the build.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    Whatever the block writes there (text, a zip archive, a fetched capture) is removed when
    the block fails, so neither a half file nor a stray temporary stays behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; outputs are meant to be shared like any other file.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    logger.debug("wrote %s", path)


@contextlib.contextmanager
def atomic_text_writer(
    path: Path, *, encoding: str = "utf-8", newline: str | None = "\n", durable: bool = False
) -> Iterator[TextIO]:
    """Yield a text handle whose content replaces ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding, newline=newline) as handle:
        yield handle
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def write_text_atomic(path: Path, text: str, *, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text`` atomically (LF line ends kept as given)."""
    with atomic_text_writer(path, encoding=encoding, newline="") as handle:
        handle.write(text)
