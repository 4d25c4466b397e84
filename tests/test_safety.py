"""Nothing read from a dataset, a sweep file or a record is ever deserialised into code.

Datasets come from the internet and sweep files and records from other people: they are read
as data only (HDF5 through h5py, YAML through the safe loader, JSON). Pickle and its cousins
run arbitrary code on load, so the sources must not use them at all. (multiprocessing pickles
the messages between the harness and its own child process; that never touches a file.)
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

from harness.cli import main

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for folder in ("harness", "algorithms") for p in (ROOT / folder).rglob("*.py"))
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
UNSAFE_CALLS = {"eval", "exec"}
YAML_UNSAFE = {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _is_safe_loader(path: Path, node: ast.expr | None) -> bool:
    """`Loader=` names yaml.SafeLoader or a class of the same module derived from it."""
    if node is None:
        return False
    name = _dotted(node)
    if name in ("yaml.SafeLoader", "yaml.CSafeLoader"):
        return True
    if not path.is_relative_to(ROOT):
        return False
    loader = getattr(importlib.import_module(_module_name(path)), name, None)
    return isinstance(loader, type) and issubclass(loader, yaml.SafeLoader)


def _problems(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if name in UNSAFE_CALLS or name == "torch.load" or name.endswith("read_pickle"):
                found.append(f"{where}: {name}(...)")
            if name.startswith("yaml.") and (name.split(".")[-1] in YAML_UNSAFE or
                                             name in ("yaml.load", "yaml.load_all") and not _is_safe_loader(path, keywords.get("Loader"))):
                found.append(f"{where}: {name}(...) without a SafeLoader")
            allow = keywords.get("allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                found.append(f"{where}: allow_pickle={ast.unparse(allow)}")
    return found


def test_sources_never_unpickle_eval_or_load_unsafely():
    assert len(SOURCES) > 20
    problems = [problem for path in SOURCES for problem in _problems(path)]
    assert not problems, "unsafe deserialisation:\n" + "\n".join(problems)
    assert not [p for p in SOURCES if "allow_pickle=True" in p.read_text()]


def test_the_audit_catches_what_it_looks_for(tmp_path):
    """The audit itself works: each forbidden form in a scratch module is reported."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import pickle\nimport yaml, numpy as np, torch\nx = eval('1')\ntorch.load('f')\n"
        "yaml.load('a: 1', Loader=yaml.Loader)\nyaml.load('a: 1')\nnp.load('f', allow_pickle=True)\n"
        "yaml.load('a: 1', Loader=yaml.SafeLoader)\nnp.load('f')\n"
    )
    assert [problem.split(": ", 1)[0] for problem in _problems(probe)] == [f"probe.py:{n}" for n in (1, 3, 4, 5, 6, 7)]


def test_sweep_yaml_cannot_construct_python_objects(make_tiny_dataset, tmp_path, capsys):
    marker = tmp_path / "pwned"
    sweep = tmp_path / "evil.yaml"
    sweep.write_text(f'faiss-flat: !!python/object/apply:os.system ["touch {marker}"]\n')
    code = main(["--dataset", str(make_tiny_dataset()), "--sweep", str(sweep), "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "not valid YAML" in err and "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../escape", "../../tmp/evil-128-euclidean", "..", ".hidden", "sift-128-euclidean\x00x"])
def test_a_dataset_name_never_places_a_file_outside_the_data_dir(tmp_path, capsys, name):
    data_dir = tmp_path / "deep" / "data"
    data_dir.mkdir(parents=True)
    before = sorted(tmp_path.rglob("*"))
    for argv in (["datasets", "download", name], ["--dataset", name, "--no-plots"]):
        code = main([*argv, "--data-dir", str(data_dir), "--results-dir", str(data_dir / "r")])
        err = capsys.readouterr().err
        assert code != 0 and "error:" in err and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before
