"""Where a registration comes from: the file and the class or function that define it.

Registries use it to tell a module registering a name again (a reload, or one file imported
under two module names: the same definition, accepted) from a second definition taking a name
that is already taken (refused, naming both files), and to say in a refusal which file is at
fault: a user's plugin, or one of the project's own modules.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, NamedTuple

#: the `algorithms` package folder: files under it are the project's own modules
PACKAGE_ROOT = Path(__file__).resolve().parent


class Source(NamedTuple):
    """A definition: the file it is written in, and what it is (`class X` or `function f`)."""

    file: str
    what: str

    def describe(self) -> str:
        """`plugin /abs/path.py` for a file outside the package, else its path from the project root."""
        if not self.file:
            return "an unknown file"
        path = Path(self.file)
        if path.is_relative_to(PACKAGE_ROOT):
            return str(path.relative_to(PACKAGE_ROOT.parent))
        return f"plugin {path}"


def file_of(obj: Any) -> str:
    """The absolute path of the file that defines a class or function ('' if it has none)."""
    try:
        found = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except (TypeError, OSError):
        return ""
    return str(Path(found).resolve())


def source_of_class(cls: type) -> Source:
    return Source(file_of(cls), f"class {cls.__qualname__}")


def source_of_function(fn: Any) -> Source:
    return Source(file_of(fn), f"function {getattr(fn, '__qualname__', repr(fn))}")
