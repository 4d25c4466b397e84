"""Sweep files: Cartesian products, defaults, and errors that name the file, line and key."""
import textwrap

import pytest

from algorithms import registry
from algorithms.base import Adapter, Control, Param, positive
from harness.errors import ConfigError
from harness.plan import sweeps


class _Toy(Adapter):
    """A toy adapter for sweep tests."""

    build_params = {"size": Param(int, 4, check=positive)}
    query_params = {"probe": Param(int, 1, check=positive)}

    def _fit(self, X):
        pass

    def _search(self, Q, k):
        raise NotImplementedError


registry.add("toy-sweep", _Toy, sweep={"build": {"size": [1, 2]}, "query": {"probe": [1, 2, 3]}})


def _file(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_product_of_build_and_query(tmp_path):
    entries = sweeps.read_sweep_file(_file(tmp_path, """
        toy-sweep:
          build: {size: [2, 8]}
          query: {probe: [1, 2, 4]}
        small:
          algorithm: toy-sweep
          build: {size: 3}
          max_queries: 10
    """))
    configs = sweeps.expand(entries, n_train=1000)
    assert [c.build_params for c in configs] == [{"size": 2}, {"size": 8}, {"size": 3}]
    assert [q["probe"] for q in configs[0].query_params] == [1, 2, 4]
    assert configs[2].entry == "small" and configs[2].max_queries == 10 and configs[2].query_params == [{}]


def test_large_overrides_apply_above_threshold(tmp_path):
    entries = sweeps.read_sweep_file(_file(tmp_path, """
        toy-sweep:
          build: {size: [2]}
          large: {build: {size: [64]}}
    """))
    assert sweeps.expand(entries, 10)[0].build_params == {"size": 2}
    assert sweeps.expand(entries, sweeps.LARGE_TRAIN)[0].build_params == {"size": 64}


def test_registered_sweep_is_used_without_a_file_entry():
    [entry] = sweeps.default_entries(["toy-sweep"])
    configs = sweeps.expand([entry], 100)
    assert len(configs) == 2 and len(configs[0].query_params) == 3


def test_default_file_parses_and_validates():
    entries = sweeps.read_sweep_file(sweeps.DEFAULT_SWEEP_FILE)
    assert {"bruteforce", "faiss-ivf", "hnswlib"} <= {e.name for e in entries}
    assert sweeps.expand(entries, 10_000) and sweeps.expand(entries, 1_000_000)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("toy-sweep:\n  build: {size: [1, 2]\n", r"line \d+.*not valid YAML"),
        ("toy-sweep:\n  biuld: {size: [1]}\n", r"line 2: unknown key 'biuld'.*"),
        ("toy-sweeep:\n  build: {size: [1]}\n", r"line 1: unknown algorithm 'toy-sweeep'"),
        ("toy-sweep:\n  build:\n    sise: [1]\n", r"unknown build parameter 'sise'"),
        ("toy-sweep:\n  query:\n    probe: [0]\n", r"'probe' = 0 must be > 0"),
        ("toy-sweep:\n  build:\n    size: ['a']\n", r"'size' must be int"),
        ("toy-sweep:\n  build:\n    size: []\n", r"line 3: build parameter 'size' has no values"),
        ("- just a list\n", r"top level must be a mapping"),
        ("", r"is empty"),
    ],
)
def test_malformed_files_name_the_problem(tmp_path, text, pattern):
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError, match=pattern) as info:
        sweeps.expand(sweeps.read_sweep_file(path), 100)
    assert str(path) in str(info.value)


def test_unknown_param_suggests_close_match(tmp_path):
    path = _file(tmp_path, "toy-sweep:\n  query:\n    prob: [1]\n")
    with pytest.raises(ConfigError) as info:
        sweeps.expand(sweeps.read_sweep_file(path), 100)
    assert "probe" in info.value.hint


def test_select_by_name_with_suggestions(tmp_path):
    entries = sweeps.read_sweep_file(_file(tmp_path, "toy-sweep: {}\n"))
    assert sweeps.select(entries, ["toy-sweep"]) == entries
    with pytest.raises(ConfigError, match="no entry"):
        sweeps.select(entries, ["toy-swep"])


def test_algorithms_marked_out_of_the_default_run_run_only_by_name():
    registry.add("toy-slow", _Toy, sweep={"query": {"probe": [1]}}, default_run=False)
    assert "toy-slow" not in {e.name for e in sweeps.default_entries()}
    assert "toy-sweep" in {e.name for e in sweeps.default_entries()}
    assert [e.name for e in sweeps.default_entries(["toy-slow"])] == ["toy-slow"]


def test_every_potential_configuration_runs_beside_its_control() -> None:
    [entry] = sweeps.default_entries(["potential-1"])
    [config] = sweeps.expand([entry], 1000)
    methods = [q for q in config.query_params if q.get("ascent") != "none"]
    controls = [q for q in config.query_params if q.get("ascent") == "none"]
    assert len(methods) == 2  # rates 0.02 and 0.05
    # one control serves both: the rate means nothing without a climb
    assert controls == [{"ascent": "none"}]
    assert all(config.spec.adapter.controls_of(q)[0][1] == {"ascent": "none"} for q in methods)
    [baseline] = sweeps.expand(sweeps.default_entries(["hnswlib"]), 1000)[:1]
    assert not any(q.get("ascent") for q in baseline.query_params)


def test_an_entry_for_named_datasets_runs_only_there() -> None:
    entries = sweeps.default_entries(["potential-1-note"])
    assert sweeps.expand(entries, 1000, "random-xs-20-euclidean") == []
    [config] = sweeps.expand(entries, 1000, "uniform-64-euclidean")
    assert config.build_params["scale"] == 1.0
    assert {q["ascent"] for q in config.query_params} == {"normalised", "none"}


class _TwoControls(_Toy):
    """Two parts under test, each with a control that resets its own knobs."""

    query_params = {"probe": Param(int, 1, check=positive), "climb": Param(str, "on", choices=("on", "off")),
                    "rate": Param(float, 1.0), "prune": Param(str, "on", choices=("on", "off")),
                    "slack": Param(float, 0.5)}
    controls = (Control({"climb": "off"}, ("rate",)), Control({"prune": "off"}, ("slack",)))


registry.add("toy-two-controls", _TwoControls)


def test_every_control_runs_beside_its_method_once_each_with_its_own_resets() -> None:
    entry = sweeps.SweepEntry("toy-two-controls", "toy-two-controls", {}, {"rate": [1.0, 2.0], "slack": [0.5]})
    [config] = sweeps.expand([entry], 1000)
    assert config.query_params == [
        {"rate": 1.0, "slack": 0.5},
        {"slack": 0.5, "climb": "off"},
        {"rate": 1.0, "prune": "off"},
        {"rate": 2.0, "slack": 0.5},
        {"rate": 2.0, "prune": "off"},  # the climb-off control is shared: the rate means nothing there
    ]
    assert _TwoControls.control_switch == {"climb": "off"} and _TwoControls.control_resets == ("rate",)
    assert _TwoControls.is_control({"prune": "off"}) and not _TwoControls.is_control({"rate": 2.0})
    # an adapter declaring one control_switch, as before, has it as its only control
    assert [dict(c.switch) for c in registry.get("potential-probe").adapter.controls] == [{"stop": "geometric"}]


def _ivf_grid(tmp_path, nlist, nprobe, extra=""):
    path = _file(tmp_path, f"{extra}faiss-ivf:\n  build: {{nlist: {nlist}}}\n  query: {{nprobe: {nprobe}}}\n")
    return path, sweeps.expand(sweeps.read_sweep_file(path), 9000)


def test_a_grid_with_some_invalid_combinations_runs_the_valid_ones_and_names_the_others(tmp_path):
    """ann-benchmarks grids cross every nprobe with every nlist: nprobe 32 cannot run on 4 or
    16 lists, but the rest of the grid can."""
    _, configs = _ivf_grid(tmp_path, "[4, 16, 64]", "[1, 8, 32]")
    kept, notes = sweeps.check_configs(configs, 10, 9000, 20)
    assert [(c.build_params["nlist"], [q["nprobe"] for q in c.query_params]) for c in kept] == [
        (4, [1]), (16, [1, 8]), (64, [1, 8, 32])]
    assert notes == [
        "skipped faiss-ivf nlist=4 nprobe=8: faiss-ivf: nprobe = 8 is larger than nlist = 4",
        "skipped faiss-ivf nlist=4 nprobe=32: faiss-ivf: nprobe = 32 is larger than nlist = 4",
        "skipped faiss-ivf nlist=16 nprobe=32: faiss-ivf: nprobe = 32 is larger than nlist = 16",
    ]


def test_a_build_configuration_with_no_valid_query_is_left_out_when_others_of_the_grid_run(tmp_path):
    _, configs = _ivf_grid(tmp_path, "[4, 64]", "[8, 32]")
    kept, notes = sweeps.check_configs(configs, 10, 9000, 20)
    assert [c.build_params["nlist"] for c in kept] == [64] and len(notes) == 2


def test_a_grid_with_no_valid_combination_is_refused_naming_file_entry_and_why(tmp_path):
    path, configs = _ivf_grid(tmp_path, "[4, 8]", "[16, 32]", extra="toy-sweep: {}\n")
    with pytest.raises(ConfigError) as info:
        sweeps.check_configs(configs, 10, 9000, 20)
    message = str(info.value)
    assert f"{path}, line 2" in message and "entry 'faiss-ivf' has no valid combination" in message
    assert "none of 4 can run" in message and "nprobe = 16 is larger than nlist = 4" in message
    assert "nprobe <= 4" in info.value.hint
