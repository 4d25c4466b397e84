"""Where the cache files of a dataset file live: beside it when its folder can be written, else
in a folder of their own under the data directory.

A dataset file gets cache files named after it: `<file>.sha256` (its checksum, keyed by size
and mtime, `loader.file_checksum`), `<file>.groundtruth` (its ground truth passed the check,
`groundtruth`), `<file>.train.npy` and `<file>.train.npy.sha256` (the shared copy of its training
vectors, `train_copy`). Beside the file is where a user looks for them and where deleting the
dataset's folder deletes them too, so they go there whenever that folder can be written. A
dataset given by path in a folder that cannot be written (a read-only mount, another user's
folder) gets them under the data directory (`--data-dir`, else `$GPNN_DATA_DIR`, else
`./datasets`) instead, in `side-files/<file name>-<digest>/`, the digest being that of the file's
absolute path: two files of one name in different folders never share caches, and the next run
that opens the same path finds them again. Without that, every run would hash the file again,
check its ground truth again, and hold the training vectors once per process.

Whether a folder can be written is asked of the folder itself: `os.access` (which a read-only
mount answers no), then, when the caller is about to write, a real write of a temporary file
(which an ACL, a root-squashed NFS share or a full disk answers no, and `os.access` may not).
Running as root, a chmod 0555 folder is writable, and is written.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from harness.data.registry import default_data_dir

#: the folder under the data directory that holds the cache files of read-only folders' datasets
SIDE_FOLDER = "side-files"


def folder_writable(folder: Path, *, probe: bool = True) -> bool:
    """Whether files can be created in `folder`: `os.access`, then (`probe`) a real attempt."""
    folder = Path(folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    if not probe:
        return True
    try:
        fd, name = tempfile.mkstemp(prefix=".write-test.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def side_dir(dataset: Path, data_dir: Path | None = None, *, write: bool = True) -> Path:
    """The folder of `dataset`'s cache files: its own folder when writable, else
    `<data_dir>/side-files/<name>-<digest of its absolute path>` (`data_dir` None: the default).

    `write` False asks without writing anything (`os.access` only): for a caller that only reads.
    """
    path = Path(dataset).absolute()
    if folder_writable(path.parent, probe=write):
        return path.parent
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return root.absolute() / SIDE_FOLDER / f"{path.name}-{digest}"


def side_file(dataset: Path, suffix: str, folder: Path | None = None) -> Path:
    """`<folder>/<dataset file name><suffix>`; `folder` None: `side_dir(dataset)`."""
    dataset = Path(dataset)
    return Path(folder if folder is not None else side_dir(dataset)) / (dataset.name + suffix)


def make_folder(folder: Path) -> bool:
    """Create `folder` (and its parents) if needed; False when it cannot be (the caller then
    works without its caches)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return True
