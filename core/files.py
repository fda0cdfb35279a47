"""Writing the home's private files (keys, tokens, settings, exports): whole and 0600.

A file is written to a temporary file in its own directory (created 0600 by
:func:`tempfile.mkstemp`), flushed to disk and then renamed over the old one, so a crash or
a full disk leaves the old file or the new one, never half of one, and the content is
never readable by others, not even for a moment.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, data: str | bytes, *, replace: bool = True) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` whole, mode 0600.

    ``replace=False``: never overwrite; raises FileExistsError when ``path`` exists (made by
    another process meanwhile, say), leaving it as it is. Raises OSError as the system
    says; no temporary file is left behind."""
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists, unlike a rename
    finally:
        Path(tmp).unlink(missing_ok=True)
