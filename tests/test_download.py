"""Downloads against a local HTTP server: resume, retries, verification, offline messages."""
from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest

from harness.data.download import download
from harness.data.format import validate_file
from harness.data.loader import obtain, open_dataset
from harness.data.registry import DatasetInfo, resolve
from harness.errors import DownloadError

FAST = {"retries": 2, "backoff": 0.01, "timeout": 2.0, "progress": False}


@dataclass
class Server:
    """What the test wants served (`behaviour(handler, n)` for the n-th request) and what arrived."""

    base: str
    body: bytes = b""
    behaviour: Callable[["Handler", int], None] | None = None
    ranges: list[str | None] = field(default_factory=list)

    def url(self, name: str = "tiny-8-euclidean") -> str:
        return f"{self.base}/{name}.hdf5"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state = self.server.state  # type: ignore[attr-defined]
        state.ranges.append(self.headers.get("Range"))
        (state.behaviour or serve)(self, len(state.ranges) - 1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the name http.server gives it
        pass


def serve(handler: Handler, _: int, honour_range: bool = True) -> None:
    """A well-behaved server: 200, or 206 for a Range request."""
    body = handler.server.state.body  # type: ignore[attr-defined]
    match = re.match(r"bytes=(\d+)-", handler.headers.get("Range") or "")
    if match and honour_range:
        start = int(match.group(1))
        handler.send_response(206)
        handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        body = body[start:]
    else:
        handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def cut_short(handler: Handler, _: int) -> None:
    """Promise the whole file, send half, close."""
    body = handler.server.state.body  # type: ignore[attr-defined]
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[: len(body) // 2])
    handler.close_connection = True


class QuietServer(ThreadingHTTPServer):
    """A test server: clients that hang up early (the timeout test) are expected, not errors."""

    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path, make_tiny_dataset: Callable[..., Path]) -> Iterator[Server]:
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    state = Server(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    state.body = make_tiny_dataset("served.hdf5", n_train=3000).read_bytes()
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def info_for(server: Server, **extra: object) -> DatasetInfo:
    return DatasetInfo("tiny-8-euclidean", "euclidean", 8, 3000, 10, url=server.url(), **extra)  # type: ignore[arg-type]


def no_leftovers(data_dir: Path) -> bool:
    return not list(data_dir.glob("*.part")) and not (data_dir / "tiny-8-euclidean.hdf5").exists()


def test_good_download(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    path = download(info_for(server), data_dir, progress=True)
    assert path == data_dir / "tiny-8-euclidean.hdf5" and path.read_bytes() == server.body
    validate_file(path)
    assert not list(data_dir.glob("*.part"))
    err = capsys.readouterr().err
    assert "tiny-8-euclidean" in err and "100%" in err
    assert "\r" not in err  # not a terminal: plain lines, no bar redraws


def test_present_file_is_kept_unless_forced(server: Server, tmp_path: Path) -> None:
    download(info_for(server), tmp_path, **FAST)
    download(info_for(server), tmp_path, **FAST)
    assert len(server.ranges) == 1
    download(info_for(server), tmp_path, force=True, **FAST)
    assert len(server.ranges) == 2


def test_size_and_sha256_are_checked_when_known(server: Server, tmp_path: Path) -> None:
    good = {"size_bytes": len(server.body), "sha256": hashlib.sha256(server.body).hexdigest()}
    assert download(info_for(server, **good), tmp_path / "ok", **FAST).is_file()
    with pytest.raises(DownloadError, match="sha256: expected 0+, found"):
        download(info_for(server, sha256="0" * 64), tmp_path / "sha", **FAST)
    assert no_leftovers(tmp_path / "sha")
    with pytest.raises(DownloadError, match=f"size: expected 12 bytes, found {len(server.body)}"):
        download(info_for(server, size_bytes=12), tmp_path / "size", **FAST)
    assert no_leftovers(tmp_path / "size")


def test_404_names_the_url(server: Server, tmp_path: Path) -> None:
    server.behaviour = lambda handler, _: handler.send_error(404)
    with pytest.raises(DownloadError) as caught:
        download(info_for(server), tmp_path, **FAST)
    assert server.url() in caught.value.message and "404" in caught.value.message
    assert len(server.ranges) == 1  # a missing file is not retried
    assert no_leftovers(tmp_path)


def test_truncated_response_fails_after_retries(server: Server, tmp_path: Path) -> None:
    server.behaviour = lambda handler, n: cut_short(handler, n)
    with pytest.raises(DownloadError) as caught:
        download(info_for(server), tmp_path, **FAST)
    assert "3 attempts" in caught.value.message and len(server.ranges) == 3
    assert not (tmp_path / "tiny-8-euclidean.hdf5").exists()


def test_dropped_connection_resumes_with_range(server: Server, tmp_path: Path) -> None:
    server.behaviour = lambda handler, n: cut_short(handler, n) if n == 0 else serve(handler, n)
    path = download(info_for(server), tmp_path, **FAST)
    assert path.read_bytes() == server.body
    assert server.ranges == [None, f"bytes={len(server.body) // 2}-"]


def test_server_ignoring_range_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    server.behaviour = lambda handler, n: cut_short(handler, n) if n == 0 else serve(handler, n, honour_range=False)
    path = download(info_for(server), tmp_path, **FAST)
    assert path.read_bytes() == server.body
    assert server.ranges[1] is not None


def test_garbage_is_rejected_and_not_renamed(server: Server, tmp_path: Path) -> None:
    server.body = b"<html>not a dataset</html>" * 100
    with pytest.raises(DownloadError) as caught:
        download(info_for(server), tmp_path, **FAST)
    assert "not a valid HDF5 file" in caught.value.message
    assert no_leftovers(tmp_path)


def test_slow_server_times_out_then_retries(server: Server, tmp_path: Path) -> None:
    def slow_first(handler: Handler, n: int) -> None:
        if n == 0:
            time.sleep(0.6)
        serve(handler, n)

    server.behaviour = slow_first
    started = time.monotonic()
    path = download(info_for(server), tmp_path, **{**FAST, "timeout": 0.2})
    assert path.read_bytes() == server.body and len(server.ranges) == 2
    assert time.monotonic() - started < 3


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_message_names_url_and_where_to_put_the_file(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/sift-128-euclidean.hdf5"
    info = DatasetInfo("sift-128-euclidean", "euclidean", 128, 1_000_000, 10_000, url=url)
    with pytest.raises(DownloadError) as caught:
        download(info, tmp_path / "datasets", **FAST)
    text = str(caught.value)
    assert f"cannot download sift-128-euclidean from {url}" in text
    assert str((tmp_path / "datasets" / "sift-128-euclidean.hdf5").absolute()) in text
    assert "python -m harness datasets download sift-128-euclidean" in text
    assert text.count("cannot download") == 1


def test_open_dataset_downloads_from_the_configured_mirror(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_tiny_dataset: Callable[..., Path]
) -> None:
    server.body = make_tiny_dataset("mnist.hdf5", dim=784, n_train=50).read_bytes()
    monkeypatch.setenv("GPNN_DATASET_URL", server.base + "/")
    ds = open_dataset("mnist", tmp_path / "data", progress=False)
    assert ds.name == "mnist-784-euclidean" and ds.dimension == 784
    assert (tmp_path / "data" / "mnist-784-euclidean.hdf5").is_file()


def test_download_of_a_generated_dataset_generates_it(tmp_path: Path) -> None:
    path = obtain(resolve("uniform-64"), tmp_path, progress=False)
    validate_file(path)
