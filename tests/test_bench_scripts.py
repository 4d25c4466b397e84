"""Every bench script still imports and builds its command line.

No other test runs the scripts in bench/, and they import the harness's and the algorithms'
modules by name, so a refactor that moves or renames one would break a script silently. Each
script is imported from its file (as `python bench/X.py` would, the script putting the repository
root on sys.path itself) and its argument parser is built and asked for its help, without running.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))
#: modules of bench/ that scripts import, not scripts themselves (no command line)
HELPERS = {"drive"}


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"bench_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def test_the_bench_directory_holds_the_scripts_this_test_checks() -> None:
    names = {p.stem for p in SCRIPTS}
    assert {"cheap_steps", "potential_roles"} <= names and HELPERS <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_each_bench_script_imports_and_builds_its_command_line(path: Path) -> None:
    module = load(path)
    if path.stem in HELPERS:
        assert not hasattr(module, "main")
        return
    assert callable(module.main)
    parser = module.build_parser()
    text = parser.format_help()
    assert text.startswith("usage: ") and "--help" in text
    # each option's default is built without error (types, choices) by parsing no arguments,
    # except where the script requires one
    required = [a for a in parser._actions if a.required]
    if not required:
        parser.parse_args([])
