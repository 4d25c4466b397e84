"""Files, shared by the dataset layer and the record store: checksums and atomic writes."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in blocks so multi-GB datasets stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], None], suffix: str = ".tmp", mode: int | None = None) -> Path:
    """Have `write` fill a temporary file beside `path`, then rename it to `path`.

    Readers see the old file or the whole new one, never half of it; a writer killed midway
    leaves only a dot-named temporary (never read as a result). `mode` sets the permissions;
    by default they are those of a file made with open(): 0666 less the umask (0644 under
    umask 022), so that colleagues read the records, figures and reports as the user's umask
    allows, not mkstemp's private 0600. Returns `path`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, mode if mode is not None else 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """This process's umask, read from /proc/self/status where there is one (Linux 4.7+): setting
    it to learn it, as os.umask must, would change it for a moment under every other thread."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_durably(data: bytes) -> Callable[[Path], None]:
    """A writer for `atomic_write` that writes `data` and flushes it to the disk (fsync)."""

    def write(target: Path) -> None:
        with open(target, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    return write


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The JSON object a cache file beside a dataset holds; None when it is absent or unreadable
    (a cache that cannot be read is a cache that is not there)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def write_sidecar(path: Path, document: dict[str, Any]) -> bool:
    """Write a cache file beside a dataset atomically (0644: other users read it); returns False
    when the directory is unwritable, which only disables the cache."""
    try:
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(document)), mode=0o644)
    except OSError:
        return False
    return True
