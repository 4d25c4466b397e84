"""Realistic synthetic run records, written through the real result store, for tests.

Plots, report and summary read records only, so they can be tested without running any
algorithm: this module writes a plausible mix (an exact baseline, FAISS IVF and hnswlib sweeps,
a Gaussian-potential sweep with per-query iteration counts, a single-query run, a failed run,
optionally GPU runs) with `harness.records.write_record`, exactly as the runner would.
Numbers follow the usual shapes (recall rises and QPS falls along a sweep) but mean nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from harness.records import new_document, record_dir, record_key, record_stem, write_record

DEFAULT_DATASET = "synthetic-16-euclidean"


def provenance(dataset: str, gpu: bool = False) -> dict[str, Any]:
    """A provenance block with every field the runner fills in."""
    return {
        "hostname": "bench-host", "platform": "Linux-6.1-x86_64", "python": "3.11.7",
        "cpu_model": "Synthetic CPU @ 3.0GHz", "cpu_count": 2,
        "gpu_name": "NVIDIA H100 80GB HBM3" if gpu else None,
        "torch": "2.11.0", "cuda": "12.8" if gpu else None,
        "libraries": {"numpy": "2.4.6", "faiss": "1.9.0", "hnswlib": "0.8.0"},
        "git_commit": "f30824a0000000000000000000000000deadbeef", "git_dirty": False,
        "dataset_path": f"datasets/{dataset}.hdf5", "dataset_sha256": "ab" * 32,
        "command": f"python -m harness run --dataset {dataset}",
        "started": "2025-03-01T10:00:00+00:00", "finished": "2025-03-01T10:05:00+00:00",
        "harness_version": "0.1.0",
    }


def make_document(
    dataset: str,
    algorithm: str,
    build_params: Mapping[str, Any],
    query_params: Mapping[str, Any],
    recall: float,
    qps: float,
    *,
    mode: str = "batch",
    device: str = "cpu",
    k: int = 10,
    n_queries: int = 50,
    build_s: float = 1.0,
    index_bytes: int | None = 1 << 20,
    iterations: np.ndarray | None = None,
    status: str = "ok",
    error: str | None = None,
    threads: int = 1,
    **fields: Any,
) -> dict[str, Any]:
    """One record document, built through the record declaration (`harness.records.new_document`)
    as the runner builds its own; `write_record` adds `schema` and `arrays`. `fields` sets any
    other declared field (role, controls, ...)."""
    fields.setdefault("batch_size", 1 if mode == "single" else None)
    key = record_key(algorithm, build_params, query_params, mode, k, n_queries, device, threads,
                     batch_size=fields["batch_size"])
    label = _label(algorithm, build_params, query_params)
    return new_document(
        status=status, error=error, dataset=dataset, distance="euclidean",
        algorithm=algorithm, adapter=f"{algorithm.replace('-', '_')}Adapter", label=label,
        build_params=dict(build_params), query_params=dict(query_params),
        mode=mode, k=k, n_queries=n_queries, n_queries_total=n_queries, n_train=10_000,
        dimension=16, device=device, threads=threads, seed=0, runs=3, isolation="process", executor="local", key=key,
        metrics={} if status != "ok" else _metrics(recall, qps, mode, device, build_s, index_bytes, iterations),
        provenance=provenance(dataset, gpu=device == "cuda"), **fields,
    )


def _label(algorithm: str, build_params: Mapping[str, Any], query_params: Mapping[str, Any]) -> str:
    build = ",".join(f"{k}={v}" for k, v in build_params.items())
    query = " ".join(f"{k}={v}" for k, v in query_params.items())
    return f"{algorithm}({build}) {query}".strip()


def _metrics(
    recall: float, qps: float, mode: str, device: str, build_s: float,
    index_bytes: int | None, iterations: np.ndarray | None,
) -> dict[str, Any]:
    wall = 1.0 / qps
    metrics: dict[str, Any] = {
        "recall_at_1": recall, "recall_at_1_id": max(0.0, recall - 0.002),
        "recall_at_k": min(1.0, recall * 0.98 + 0.01), "recall_at_k_id": min(1.0, recall * 0.98),
        "qps": qps, "qps_best": qps * 1.05, "qps_runs": [qps * 0.97, qps, qps * 1.05],
        "query_wall_s": wall, "query_cpu_s": wall * (0.2 if device == "cuda" else 1.9),
        "query_gpu_s": wall * 0.8 if device == "cuda" else None,
        "batch_wall_s": [wall * 50] * 3, "batch_cpu_s": [wall * 95] * 3,
        "batch_gpu_s": [wall * 40] * 3 if device == "cuda" else None,
        "latency_p50_s": wall if mode == "single" else None,
        "latency_p95_s": wall * 1.5 if mode == "single" else None,
        "latency_p99_s": wall * 2.0 if mode == "single" else None,
        "build_s": build_s, "build_cpu_s": build_s * 1.8, "index_bytes": index_bytes,
        "build_rss_bytes": None if index_bytes is None else index_bytes * 2,
        "iterations_mean": None, "iterations_median": None, "iterations_p95": None, "iterations_max": None,
        "dist_comps_mean": None,
    }
    if iterations is not None:
        metrics.update(
            iterations_mean=float(np.mean(iterations)), iterations_median=float(np.median(iterations)),
            iterations_p95=float(np.percentile(iterations, 95)), iterations_max=int(np.max(iterations)),
            dist_comps_mean=float(np.mean(iterations)) * 10_000, converged_onto_nn_rate=recall,
        )
    return metrics


def _arrays(rng: np.random.Generator, n_queries: int, k: int, mode: str, qps: float,
            iterations: np.ndarray | None) -> dict[str, np.ndarray]:
    arrays = {
        "ids": rng.integers(0, 10_000, size=(n_queries, k)).astype(np.int64),
        "distances": np.sort(rng.random((n_queries, k)), axis=1),
    }
    if iterations is not None:
        arrays["iterations"] = iterations.astype(np.int64)
        arrays["dist_comps"] = iterations.astype(np.float64) * 10_000
    if mode == "single":
        arrays["latencies"] = rng.gamma(4.0, 0.25 / qps, size=n_queries)
    return arrays


def write_one(results_dir: Path, document: Mapping[str, Any], rng: np.random.Generator,
              iterations: np.ndarray | None = None) -> Path:
    """Write one document plus plausible arrays; return the JSON path."""
    directory = record_dir(results_dir, document["dataset"], document["algorithm"])
    stem = record_stem(document["algorithm"], document["build_params"], document["query_params"], document["key"])
    qps = (document.get("metrics") or {}).get("qps") or 1.0
    arrays = _arrays(rng, document["n_queries"], document["k"], document["mode"], qps, iterations)
    return write_record(directory, stem, dict(document), arrays)


# --- records with real per-query answers, scored against a real ground-truth file -----------------


def write_ground_truth_file(path: Path, n_queries: int, k: int = 10, n_train: int = 300, seed: int = 0) -> tuple[str, dict[str, np.ndarray]]:
    """A small dataset file in the ann-benchmarks layout with exact ground truth (k + 5 neighbours
    per query); returns its SHA-256 and its `neighbors` / `distances`."""
    from harness.data.generate import ground_truth, write_ann_hdf5
    from harness.data.loader import file_checksum

    rng = np.random.default_rng(seed)
    train, test = rng.random((n_train, 4)) * 100.0, rng.random((n_queries, 4)) * 100.0
    neighbors, distances = ground_truth("euclidean", train, test, k + 5, progress=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_ann_hdf5(Path(path), train, test, neighbors, distances, "euclidean")
    return file_checksum(Path(path)), {"neighbors": neighbors, "distances": distances}


def answers_with_hits(hits: np.ndarray, truth: Mapping[str, np.ndarray], k: int = 10) -> dict[str, np.ndarray]:
    """`ids` and `distances` of an answer whose recall@1 hits are exactly `hits`: a hit returns the
    true k nearest, a miss the 2nd..(k+1)th (whose first distance is beyond the true one + epsilon)."""
    from harness.hits import EPSILON

    hits = np.asarray(hits, dtype=bool)
    n = len(hits)
    shift = np.where(hits, 0, 1)[:, None] + np.arange(k)[None, :]
    ids = np.take_along_axis(truth["neighbors"][:n], shift, axis=1)
    distances = np.take_along_axis(truth["distances"][:n], shift, axis=1)
    gap = truth["distances"][:n, 1] - truth["distances"][:n, 0]
    if np.any(~hits & (gap <= EPSILON)):
        raise ValueError("a miss would tie with the true nearest neighbour: choose another seed")
    return {"ids": ids, "distances": distances}


def write_answered(
    results_dir: Path, document: Mapping[str, Any], arrays: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray],
    dataset_file: tuple[Path, str],
) -> Path:
    """Write `document` with per-query `arrays` (ids, distances, optionally dist_comps), its
    quality metrics scored from them as the run scores them and its provenance naming
    `dataset_file` = (path, sha256); return the JSON path."""
    from harness.measure import metrics as run_metrics

    document = dict(document)
    n, k = document["n_queries"], document["k"]
    scored = run_metrics.quality(arrays["ids"], arrays["distances"], truth["neighbors"][:n], truth["distances"][:n], k)
    if "dist_comps" in arrays:
        scored["dist_comps_mean"] = float(np.mean(arrays["dist_comps"]))
    document["metrics"] = {**document["metrics"], **scored}
    document["provenance"] = {**document["provenance"], "dataset_path": str(dataset_file[0]), "dataset_sha256": dataset_file[1]}
    directory = record_dir(results_dir, document["dataset"], document["algorithm"])
    stem = record_stem(document["algorithm"], document["build_params"], document["query_params"], document["key"])
    return write_record(directory, stem, document, dict(arrays))


def write_synthetic_records(
    results_dir: Path,
    dataset: str = DEFAULT_DATASET,
    *,
    n_queries: int = 50,
    k: int = 10,
    gpu: bool = False,
    include_failed: bool = True,
    seed: int = 0,
) -> list[Path]:
    """Write a realistic mix of records for `dataset`; return their JSON paths.

    Contents: bruteforce (recall 1); faiss-ivf nlist=64 with nprobe 1..32; hnswlib with two
    builds (M=8, M=16) swept over ef, plus one single-query run; potential-gaussian over beta and
    steps with per-query iteration arrays; with `gpu`, a CUDA bruteforce and a CUDA potential
    run; with `include_failed`, one failed hnswlib run (status "failed", empty metrics).
    """
    rng = np.random.default_rng(seed)
    common = {"k": k, "n_queries": n_queries}
    paths: list[Path] = []

    def add(document: dict[str, Any], iterations: np.ndarray | None = None) -> None:
        paths.append(write_one(results_dir, document, rng, iterations))

    add(make_document(dataset, "bruteforce", {}, {}, 1.0, 900.0, build_s=0.01, index_bytes=640_000, **common))
    for i, nprobe in enumerate((1, 2, 4, 8, 16, 32)):
        recall = min(1.0, 0.45 + 0.11 * i)
        add(make_document(dataset, "faiss-ivf", {"nlist": 64}, {"nprobe": nprobe}, recall, 40_000 / 2 ** i,
                          build_s=0.8, index_bytes=700_000, **common))
    for m, base_recall, build_s in ((8, 0.70, 1.5), (16, 0.80, 3.0)):
        for i, ef in enumerate((10, 20, 40, 80, 160)):
            recall = min(1.0, base_recall + (1.0 - base_recall) * (1 - 0.5 ** (i + 1)))
            add(make_document(dataset, "hnswlib", {"M": m, "ef_construction": 200}, {"ef": ef}, recall,
                              60_000 / (1.6 ** i) / (m / 8), build_s=build_s, index_bytes=800_000 + m * 40_000,
                              **common))
    add(make_document(dataset, "hnswlib", {"M": 16, "ef_construction": 200}, {"ef": 40}, 0.97, 9_000.0,
                      mode="single", build_s=3.0, index_bytes=1_440_000, **common))
    for beta, steps_list in ((1.0, (1, 3)), (4.0, (1, 3, 10))):
        for steps in steps_list:
            iterations = np.clip(rng.poisson(steps * 0.7, n_queries) + 1, 1, steps)
            recall = min(1.0, 0.3 + 0.12 * beta * (1 - np.exp(-steps / 3)))
            add(make_document(dataset, "potential-gaussian", {}, {"beta": beta, "max_iters": steps}, recall,
                              2_000 / steps, build_s=0.05, index_bytes=None, iterations=iterations, **common),
                iterations)
    if gpu:
        add(make_document(dataset, "bruteforce", {}, {}, 1.0, 50_000.0, device="cuda", build_s=0.2,
                          index_bytes=640_000, **common))
        iterations = np.clip(rng.poisson(3, n_queries) + 1, 1, 10)
        add(make_document(dataset, "potential-gaussian", {}, {"beta": 4.0, "max_iters": 10}, 0.72, 30_000.0,
                          device="cuda", build_s=0.3, index_bytes=None, iterations=iterations, **common),
            iterations)
    if include_failed:
        add(make_document(dataset, "hnswlib", {"M": 64, "ef_construction": 4}, {"ef": 1}, 0.0, 0.0,
                          status="failed", error="ParameterError: ef_construction=4 must be >= M=64", **common))
    return paths
