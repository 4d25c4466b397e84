"""Fast paths give the reference path's answers: sdpa vs matmul, low-precision brute force, compile, budgets.

The CPU tests exercise every code path here (SDPA has CPU kernels, bf16 matmul runs on CPUs);
the CUDA tests (fp16/bf16 fused attention, fp16 brute force) skip with a reason without a GPU.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from algorithms import registry
from algorithms.potential import Field, fused, get_potential
from algorithms.potential.chunks import TEMPORARIES, block_bytes, block_shape
from harness.errors import ParameterError


def _clusters(seed: int = 0, n: int = 3000, d: int = 32, nq: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Points with clear gaps, queries near some of them: exact neighbours survive low precision."""
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * 3).astype(np.float32)
    Q = (X[rng.integers(0, n, nq)] + 0.05 * rng.standard_normal((nq, d))).astype(np.float32)
    return X, Q


def _units(X: np.ndarray, Q: np.ndarray, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    mean = X.mean(0)
    return torch.from_numpy(X - mean).to(device), torch.from_numpy(Q - mean).to(device)


# -- sdpa == matmul ----------------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [0.05, 1.0, 20.0])
def test_sdpa_mean_shift_step_equals_matmul_step_on_cpu(beta: float) -> None:
    X, Q = _clusters(n=1500)
    data, q = _units(X, Q)
    gaussian = get_potential("gaussian")
    ref = gaussian.evaluate(q, Field.of(data), {"beta": beta}, track_m=5)
    out = gaussian.evaluate(q, Field.of(data, kernel="sdpa"), {"beta": beta}, track_m=5)
    assert torch.allclose(out.mean, ref.mean, atol=1e-4, rtol=1e-4)
    assert torch.allclose(out.grad, ref.grad, atol=1e-3 * beta, rtol=1e-3)
    assert torch.equal(out.top_ids.sort(1).values, ref.top_ids.sort(1).values)
    assert torch.isnan(out.value).all()  # documented: the fused kernel has no normaliser


def test_sdpa_blocks_queries_under_a_small_budget() -> None:
    X, Q = _clusters(n=2000)
    data, q = _units(X, Q)
    gaussian = get_potential("gaussian")
    ref = gaussian.evaluate(q, Field.of(data), {"beta": 2.0})
    tight = gaussian.evaluate(q, Field.of(data, memory_mb=0.1, kernel="sdpa"), {"beta": 2.0})
    assert torch.allclose(tight.mean, ref.mean, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_sdpa_adapter_returns_the_matmul_adapters_ids(precision: str) -> None:
    X, Q = _clusters()
    results = {}
    for kernel, prec in (("matmul", "fp32"), ("sdpa", precision)):
        adapter = registry.get("potential-gaussian").make()
        adapter.fit(X)
        adapter.set_query_params(kernel=kernel, precision=prec, beta=50.0, snap="final", m=8)
        ids, dists = adapter.search(Q, 3)
        results[kernel] = (ids, dists, adapter.last_positions, adapter.stats())
    (ids_m, d_m, pos_m, _), (ids_s, d_s, pos_s, st_s) = results["matmul"], results["sdpa"]
    assert np.array_equal(ids_m, ids_s)
    assert np.allclose(d_m, d_s, rtol=1e-5)
    if precision == "fp32":
        assert np.allclose(pos_m, pos_s, atol=1e-3)
    # the sdpa kernel's top-m needs one extra full pass, and it is counted
    assert (st_s.dist_comps == st_s.iterations * len(X) + len(X) + 8).all()


def test_kernel_and_precision_are_validated() -> None:
    adapter = registry.get("potential-1").make()
    with pytest.raises(ParameterError, match="kernel 'sdpa' is not implemented"):
        adapter.set_query_params(kernel="sdpa")
    gaussian = registry.get("potential-gaussian").make()
    with pytest.raises(ParameterError, match="needs kernel 'sdpa'"):
        gaussian.set_query_params(precision="bf16")
    with pytest.raises(ParameterError, match="not allowed"):
        gaussian.set_query_params(kernel="flash")


def test_fp16_overflow_is_refused_with_a_remedy() -> None:
    X = torch.full((4, 8), 300.0)
    with pytest.raises(ParameterError, match="beyond the range"):
        fused.augmented_keys(X, (X * X).sum(1) * 0 + torch.tensor([0.0, 1e6, 2e6, 3e6]), 1000.0, torch.float16)


# -- low-precision brute force ---------------------------------------------------------------------
def test_bf16_bruteforce_is_exact_after_the_fp32_rerank() -> None:
    X, Q = _clusters(seed=3)
    X += 100.0  # far from the origin: the centring and norm scaling must keep bf16 meaningful
    Q += 100.0
    exact = registry.get("bruteforce").make()
    exact.fit(X)
    low = registry.get("bruteforce").make(precision="bf16")
    low.fit(X)
    ids_ref, d_ref = exact.search(Q, 5)
    ids, d = low.search(Q, 5)
    assert np.array_equal(ids, ids_ref)
    assert np.array_equal(d, d_ref)  # same fp32 re-rank: identical distances, not just close


def test_fp16_bruteforce_is_refused_on_cpu() -> None:
    with pytest.raises(ParameterError, match="fp16"):
        registry.get("bruteforce").make(precision="fp16")


def test_bruteforce_default_is_fp32() -> None:
    assert registry.get("bruteforce").make().params["precision"] == "fp32"


# -- memory budget ---------------------------------------------------------------------------------
@pytest.mark.parametrize("memory_mb", [0.01, 1.0, 128.0, 4096.0])
@pytest.mark.parametrize("n_queries,n_points,width", [(10000, 1_000_000, 1), (1000, 100_000, 1), (100, 50_000, 128), (7, 13, 3)])
@pytest.mark.parametrize("temporaries,min_rows", [(TEMPORARIES, 1), (2, 1024), (2, 1)])
def test_block_shape_keeps_the_temporaries_under_the_budget(memory_mb, n_queries, n_points, width, temporaries, min_rows) -> None:
    rows, cols = block_shape(n_queries, n_points, width, 4, memory_mb, temporaries, min_rows)
    assert 1 <= rows <= n_queries and 1 <= cols <= n_points
    one_element = block_bytes(1, 1, width, 4, temporaries)
    # under the budget, unless a single element already exceeds it (then one element per block)
    assert block_bytes(rows, cols, width, 4, temporaries) <= max(memory_mb * 2**20, one_element)


def test_block_shape_defaults_are_the_historical_rule() -> None:
    assert block_shape(1000, 100_000, 1, 4, 128.0) == (41, 100_000)
    assert block_shape(1000, 10_000_000, 1, 4, 128.0) == (1, 4_194_304)


def test_gaussian_tiles_keep_a_thousand_rows() -> None:
    rows, cols = block_shape(10000, 1_000_000, 1, 4, 128.0, 2, 1024)
    assert rows == 1024 and cols == 16384


def test_gaussian_evaluation_is_the_same_under_any_budget() -> None:
    X, Q = _clusters(n=1200, nq=30)
    data, q = _units(X, Q)
    gaussian = get_potential("gaussian")
    whole = gaussian.evaluate(q, Field.of(data, memory_mb=64.0), {"beta": 3.0}, track_m=4)
    tiny = gaussian.evaluate(q, Field.of(data, memory_mb=0.05), {"beta": 3.0}, track_m=4)
    assert torch.allclose(whole.value, tiny.value, rtol=1e-5)
    assert torch.allclose(whole.mean, tiny.mean, atol=1e-5)
    assert torch.equal(whole.top_ids.sort(1).values, tiny.top_ids.sort(1).values)


# -- compiled blocks -------------------------------------------------------------------------------
def test_failing_compile_falls_back_to_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    fused.reset_compiled()
    monkeypatch.setattr(torch, "compile", broken)
    X, Q = _clusters(n=400, nq=10)
    data, q = _units(X, Q)
    p1 = get_potential("potential_1")
    hp = {"c": 1e3, "eps": 0.5, "clamp": 16.0}
    ref = p1.evaluate(q, Field.of(data), hp)
    with pytest.warns(RuntimeWarning, match="running eagerly"):
        out = p1.evaluate(q, Field.of(data, kernel="compiled"), hp)
    assert torch.equal(out.value, ref.value) and torch.equal(out.grad, ref.grad)
    fused.reset_compiled()


_COMPILE_REASON = "torch.compile on a CPU takes ~15 s per graph here; set GPNN_COMPILE_TESTS=1 (runs on CUDA regardless)"


@pytest.mark.slow
@pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("GPNN_COMPILE_TESTS")), reason=_COMPILE_REASON)
@pytest.mark.parametrize(
    "name,hp",
    [("potential_1", {"c": 1e3, "eps": 0.5, "clamp": 16.0}), ("potential_2", {"c": 1e3, "eps": 0.5, "clamp": 16.0}), ("naive", {"c": 10.0})],
)
def test_compiled_blocks_equal_eager(name: str, hp: dict) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    X, Q = _clusters(n=600, d=16, nq=20)
    data, q = _units(X, Q, device)
    potential = get_potential(name)
    ref = potential.evaluate(q, Field.of(data), hp, track_m=4)
    out = potential.evaluate(q, Field.of(data, kernel="compiled"), hp, track_m=4)
    key = (f"{type(potential).__qualname__}.block_terms", id(potential), q.device.type)
    if fused.compile_failed(key):
        pytest.skip("torch.compile failed here; the eager fallback ran (tested above)")
    assert torch.allclose(out.value, ref.value, rtol=1e-4, atol=1e-6)
    assert torch.allclose(out.grad, ref.grad, rtol=1e-3, atol=1e-5)
    assert torch.equal(out.top_ids.sort(1).values, ref.top_ids.sort(1).values)


# -- CUDA ------------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_low_precision_sdpa_step_tracks_the_fp32_step(precision: str) -> None:
    X, Q = _clusters(n=5000, d=128, nq=200)
    data, q = _units(X, Q, "cuda")
    gaussian = get_potential("gaussian")
    scale = float(data.norm(dim=1).median()) / 4  # a few units across, as the adapter's scale makes it
    data, q = data / scale, q / scale
    ref = gaussian.evaluate(q, Field.of(data), {"beta": 2.0})
    out = gaussian.evaluate(q, Field.of(data, kernel="sdpa", precision=precision), {"beta": 2.0})
    tol = 2e-2 if precision == "fp16" else 6e-2
    assert ((out.mean - ref.mean).norm(dim=1) <= tol * (1 + ref.mean.norm(dim=1))).float().mean() >= 0.99


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_sdpa_adapter_recall_equals_fp32(precision: str) -> None:
    X, Q = _clusters(d=128)
    ids = {}
    for kernel, prec in (("matmul", "fp32"), ("sdpa", precision)):
        adapter = registry.get("potential-gaussian").make(device="cuda")
        adapter.fit(X)
        adapter.set_query_params(kernel=kernel, precision=prec, beta=50.0, snap="final", m=16)
        ids[kernel] = adapter.search(Q, 1)[0]
    exact = registry.get("bruteforce").make()
    exact.fit(X)
    truth = exact.search(Q, 1)[0]
    assert (ids["sdpa"] == truth).mean() == (ids["matmul"] == truth).mean()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_low_precision_bruteforce_is_exact(precision: str) -> None:
    X, Q = _clusters(seed=5, d=128)
    ref = registry.get("bruteforce").make(device="cuda")
    ref.fit(X)
    low = registry.get("bruteforce").make(device="cuda", precision=precision)
    low.fit(X)
    assert np.array_equal(ref.search(Q, 10)[0], low.search(Q, 10)[0])


# -- Gaussian matmul kernel: sparse (survivors-only) weights == dense weights ------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("beta,sparse_expected", [(0.01, False), (0.3, None), (1.0, True), (5.0, True)])
# blocks of 48 points (3 columns per group) ending on whole groups, or on 3 groups of one (n = 2003);
# blocks of 10 / 5 points at 0.01 MiB for fp32 / fp64: fewer columns than groups, all groups of one
@pytest.mark.parametrize("n,memory_mb", [(2000, 0.05), (2003, 0.05), (2003, 0.01)])
def test_gaussian_sparse_weights_equal_dense_weights(monkeypatch, dtype, beta: float, sparse_expected, n, memory_mb) -> None:
    from algorithms.potential import gaussian as gaussian_module

    X, Q = _clusters(seed=3, n=n, nq=100)
    data, q = _units(X, Q)
    data, q = data.to(dtype), q.to(dtype)
    q = torch.cat([q, torch.randn(20, q.shape[1], dtype=dtype) * 3])  # queries far from any point too
    field = Field.of(data, memory_mb=memory_mb)  # 120 rows a block: many running-max rescalings
    gaussian = get_potential("gaussian")
    taken = []
    accumulate = gaussian_module._accumulate_survivors

    def counting(*args):
        taken.append(accumulate(*args))
        return taken[-1]

    monkeypatch.setattr(gaussian_module, "_accumulate_survivors", counting)
    monkeypatch.setattr(gaussian_module, "SPARSE_WEIGHTS", False)
    dense = gaussian.evaluate(q, field, {"beta": beta}, track_m=7)
    assert not taken
    monkeypatch.setattr(gaussian_module, "SPARSE_WEIGHTS", True)
    sparse = gaussian.evaluate(q, field, {"beta": beta}, track_m=7)
    assert len(taken) > 10
    if sparse_expected is not None:
        assert (any(taken) if sparse_expected else not any(taken)), taken
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(sparse.value, dense.value, rtol=tol, atol=tol * beta)
    assert torch.allclose(sparse.mean, dense.mean, rtol=tol, atol=tol * 10)
    assert torch.allclose(sparse.grad, dense.grad, rtol=tol, atol=tol * 10 * beta)
    assert torch.equal(sparse.top_ids, dense.top_ids)


@pytest.mark.parametrize("cols", [1, 15, 16, 17, 48, 50, 4096])
def test_column_groups_find_exactly_the_entries_above_the_threshold(cols: int) -> None:
    """The group-max search returns what a full compare + nonzero would, rows ascending."""
    from algorithms.potential.gaussian import SURVIVOR_GROUPS, ColumnGroups

    generator = torch.Generator().manual_seed(cols)
    logits = torch.randn(37, cols, generator=generator) * 4
    logits[5] = -1e30  # a row with nothing above its threshold
    groups = ColumnGroups(logits)
    assert torch.equal(groups.row_max, logits.amax(1))
    assert groups.group_max.shape == (37, cols // SURVIVOR_GROUPS + cols % SURVIVOR_GROUPS)
    threshold = logits.amax(1) - torch.rand(37, generator=generator) * 6
    threshold[5] = 0.0
    row_ids, col_ids, values = groups.entries_above(threshold, limit=1.0)
    want_rows, want_cols = (logits > threshold[:, None]).nonzero(as_tuple=True)
    assert torch.equal(torch.diff(row_ids) >= 0, torch.ones(len(row_ids) - 1, dtype=torch.bool))
    assert sorted(zip(row_ids.tolist(), col_ids.tolist())) == list(zip(want_rows.tolist(), want_cols.tolist()))
    assert torch.equal(values, logits[row_ids, col_ids])
    assert groups.entries_above(logits.amin(1) - 1, limit=0.5) is None  # every group holds one: too many


# -- CPU block caps: a smaller block on the CPU, never a larger one, and the same numbers -----------
def test_cpu_block_cap_lowers_only_cpu_budgets() -> None:
    from algorithms.potential.chunks import cpu_capped

    assert cpu_capped(128.0, torch.device("cpu"), 4.0) == 4.0
    assert cpu_capped(1.0, torch.device("cpu"), 4.0) == 1.0  # a smaller budget is kept
    assert cpu_capped(128.0, torch.device("cuda"), 4.0) == 128.0  # GPUs take the largest blocks


@pytest.mark.parametrize("name", ["potential_1", "potential_2", "naive"])
def test_capped_blocks_give_the_uncapped_numbers(monkeypatch, name: str) -> None:
    from algorithms.potential import coordinate, potentials

    X, Q = _clusters(seed=4, n=700, d=16, nq=30)
    data, q = _units(X, Q)
    data, q = data.double(), q.double()
    field = Field.of(data, memory_mb=128.0)
    potential = get_potential(name)
    hp = {key: param.default for key, param in potential.params.items()}
    monkeypatch.setattr(potentials, "RADIAL_CPU_MB", 0.05)  # many blocks of a few rows and points
    monkeypatch.setattr(coordinate, "COORDINATE_CPU_MB", 0.05)
    capped = potential.evaluate(q, field, hp, track_m=5)
    monkeypatch.setattr(potentials, "RADIAL_CPU_MB", 1e6)  # one block
    monkeypatch.setattr(coordinate, "COORDINATE_CPU_MB", 1e6)
    whole = potential.evaluate(q, field, hp, track_m=5)
    assert torch.allclose(capped.value, whole.value, rtol=1e-12, atol=1e-300)
    assert torch.allclose(capped.grad, whole.grad, rtol=1e-10, atol=1e-300)
    assert torch.equal(capped.top_ids, whole.top_ids)
