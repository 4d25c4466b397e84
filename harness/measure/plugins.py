"""Plugins: algorithms registered by modules outside `algorithms/`.

A user's own adapters (or the misbehaving adapters of the tests) live in a module that
`algorithms.registry.discover()` does not import. Naming it with `--plugins` or
`$GPNN_PLUGINS` (comma-separated module names or .py file paths) imports it in the harness
and in every child process, so that its `@register` runs wherever the adapter is built.
Importing a plugin runs its code, as importing any module does: list only code you trust.

The project's own algorithms are discovered first, so that a plugin taking a built-in name
(an algorithm, or a potential such as `cauchy`) is the one refused, naming both files, and the
built-in stays. A plugin's potentials are checked as they register (one evaluation on tiny
tensors, algorithms/potential/checks.py): a broken one stops the run before anything is built.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Sequence

from algorithms import registry
from harness.errors import ConfigError

PLUGINS_ENV = "GPNN_PLUGINS"


def plugin_list(option: str | None) -> tuple[str, ...]:
    """Plugin modules from `--plugins` and `$GPNN_PLUGINS` (comma-separated), in that order."""
    items = [*(option or "").split(","), *os.environ.get(PLUGINS_ENV, "").split(",")]
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def load_plugins(plugins: Sequence[str]) -> None:
    """Import each plugin (module name or .py file path) once, so its adapters register.

    A plugin refused while registering (a taken name, a potential that fails its check) raises
    that ConfigError; any other failure of its import becomes one naming the plugin.
    """
    if plugins:
        registry.discover()  # the built-ins hold their names before any plugin asks for them
    for plugin in plugins:
        try:
            _import_plugin(plugin)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the user's module is reported as such
            raise ConfigError(
                f"cannot import plugin {plugin!r}: {type(exc).__name__}: {exc}",
                f"give an importable module name or a .py file with --plugins / ${PLUGINS_ENV}",
            ) from None


def _import_plugin(plugin: str) -> None:
    if not (plugin.endswith(".py") or os.sep in plugin or "/" in plugin):
        importlib.import_module(plugin)
        return
    path = Path(plugin).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"plugin file {path} does not exist", "check the path given with --plugins")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    name = f"gpnn_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"plugin file {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
