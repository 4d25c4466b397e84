"""A fingerprint of the code that makes an algorithm's numbers, so a record knows it.

The rule, for a registered `AlgorithmSpec`:

1. The *root* modules: the module of the adapter class and of each of its base classes; for a
   potential adapter (a class with `potential_impl`, see `algorithms.potential.adapter`), also
   the modules of the potential's class and its bases, and of every plain function its methods
   call through their defaults or closures (a plugin's `@radial_potential` function lives in
   the plugin file: `register_function_potential` wraps it in a method). A base class outside
   the project (`abc.ABC`) is left out.
2. Transitively, every *project* module a root or another project module imports (anywhere in
   its body, lazy imports and `TYPE_CHECKING` blocks included): `algorithms` and
   `algorithms.*`, and plugin modules loaded from a file (named `gpnn_plugin_*` by
   `harness.measure.plugins`). Other libraries (torch, numpy, the harness's own errors) are not
   hashed: their versions are in every record's provenance.
3. Each module's source is parsed and normalised: docstrings (module, class, function) are
   removed and the tree is dumped with `ast.dump` (no line numbers, no comments, which the
   parser drops, no formatting). A comment, docstring or formatting edit leaves it unchanged;
   an edited formula changes it.
4. The fingerprint is the SHA-256 (first 16 hex digits) of the sorted (module, normalised
   digest) pairs; a plugin file is named by its file stem, so the same file loaded from
   another folder keeps its fingerprint.

A module whose source cannot be read (a compiled extension, code typed into a REPL) counts by
its name only. Each module's parse is cached by the content of its file: a sweep asks for every
algorithm, and most share most modules. Only the standard library is used, so the
run and the report can both call it.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import os
import sys
import types
from typing import Any, Iterable

#: the prefix `harness.measure.plugins` gives a plugin module loaded from a .py file
PLUGIN_PREFIX = "gpnn_plugin_"
#: digits of the fingerprint kept in records (64 bits: ample to tell versions of one code apart)
DIGITS = 16

_DIGESTS: dict[tuple[str, str, str], tuple[str, tuple[str, ...]]] = {}


def is_project_module(name: str) -> bool:
    """Whether a module is part of what is fingerprinted beyond the roots: the `algorithms`
    package and plugin modules loaded from files."""
    return name == "algorithms" or name.startswith(("algorithms.", PLUGIN_PREFIX))


def code_fingerprint(spec: Any) -> str:
    """The fingerprint of the code of a registered algorithm (`algorithms.registry.AlgorithmSpec`)."""
    return fingerprint_modules(root_modules(spec.adapter))


def root_modules(adapter: type) -> list[str]:
    """The modules that define `adapter`: its class and bases, and for a potential adapter the
    potential's class, bases and the functions its methods call."""
    roots = [adapter.__module__, *_base_modules(adapter)]
    potential = getattr(adapter, "potential_impl", None)
    if potential is not None:
        cls = potential if isinstance(potential, type) else type(potential)
        # a class made by type() under a metaclass written in Python (abc.ABCMeta) is named
        # after the metaclass's module: its methods say where it was made
        roots += [cls.__module__, *_base_modules(cls)]
        for klass in cls.__mro__:
            if klass is cls or is_project_module(klass.__module__):
                for value in vars(klass).values():
                    roots += _called_function_modules(value)
    return [name for name in dict.fromkeys(roots) if not _outside(name)]


def _outside(name: str) -> bool:
    """Whether a module is the standard library's (never fingerprinted: Python's version is in
    every record's provenance)."""
    return name.partition(".")[0] in sys.stdlib_module_names or name == "builtins"


def _base_modules(cls: type) -> list[str]:
    return [base.__module__ for base in cls.__mro__[1:] if is_project_module(base.__module__)]


def _called_function_modules(value: Any, depth: int = 2) -> list[str]:
    """The modules of `value` (a method) and of the functions it holds in its defaults or its
    closure: what a function-made potential's method calls."""
    function = getattr(value, "__func__", value)
    if not isinstance(function, types.FunctionType):
        return []
    found = [function.__module__]
    if depth == 0:
        return found
    held = [*(function.__defaults__ or ()), *(function.__kwdefaults__ or {}).values()]
    held += [cell.cell_contents for cell in function.__closure__ or () if _filled(cell)]
    for item in held:
        found += _called_function_modules(item, depth - 1)
    return found


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def fingerprint_modules(roots: Iterable[str]) -> str:
    """The fingerprint of `roots` and every project module they import, transitively."""
    seen: dict[str, str] = {}
    pending = [name for name in roots if name]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        digest, imports = module_digest(name)
        seen[name] = digest
        pending += [other for other in imports if is_project_module(other) and other not in seen]
    payload = "\n".join(f"{_stable_name(name)} {digest}" for name, digest in sorted(seen.items()))
    return hashlib.sha256(payload.encode()).hexdigest()[:DIGITS]


def _stable_name(name: str) -> str:
    """A plugin module's name without the digest of its folder (`gpnn_plugin_<stem>_<digest>`)."""
    if name.startswith(PLUGIN_PREFIX):
        return "plugin:" + name[len(PLUGIN_PREFIX):].rsplit("_", 1)[0]
    return name


def module_digest(name: str) -> tuple[str, tuple[str, ...]]:
    """The digest of module `name`'s normalised syntax tree and the modules it imports (parsed
    once per content of its file: reading a file is cheap, parsing it is not)."""
    path = _source_path(name)
    try:
        with open(path or "", "rb") as handle:
            source = handle.read()
    except OSError:
        return f"unreadable:{name}", ()
    key = (name, path or "", hashlib.sha256(source).hexdigest())
    if key not in _DIGESTS:
        try:
            tree = ast.parse(source, filename=path or "<unknown>")
        except (SyntaxError, ValueError):
            return f"unreadable:{name}", ()
        _DIGESTS[key] = (normalised_digest(tree), imported_modules(tree, name, path or ""))
    return _DIGESTS[key]


def normalised_digest(tree: ast.AST) -> str:
    """SHA-256 of the tree without docstrings, dumped without positions (comments and
    formatting never reach the tree)."""
    return hashlib.sha256(ast.dump(strip_docstrings(tree), annotate_fields=True).encode()).hexdigest()


def strip_docstrings(tree: ast.AST) -> ast.AST:
    """The tree with the docstring of every module, class and function removed (in place)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def imported_modules(tree: ast.AST, name: str, path: str) -> tuple[str, ...]:
    """Every module the tree imports, relative imports resolved against `name`'s package; for
    `from package import name`, also `package.name` (it may be a submodule)."""
    package = name if os.path.basename(path).startswith("__init__.") else name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module, node.level, package)
            if base is None:
                continue
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*" and _is_module(f"{base}.{alias.name}")]
    return tuple(dict.fromkeys(found))


def _resolve(module: str | None, level: int, package: str) -> str | None:
    if level == 0:
        return module
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        return None
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{module}" if module and base else (module or base or None)


def _is_module(name: str) -> bool:
    if name in sys.modules:
        return True
    if not is_project_module(name):
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _source_path(name: str) -> str | None:
    """The source file of module `name`: of the loaded module, else (a project module not
    imported yet) where the import system would find it."""
    module = sys.modules.get(name)
    if module is not None:
        try:
            path = inspect.getsourcefile(module)
        except TypeError:  # a built-in module
            return None
        return path
    if not is_project_module(name) or name.startswith(PLUGIN_PREFIX):
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return origin if origin and origin.endswith(".py") else None
