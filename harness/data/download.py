"""Downloading dataset files: resumable, retried, verified before they are given their name.

Dataset files are large (up to several GB) and servers and connections are imperfect, so a
download streams into `<file>.part`, resumes it with an HTTP Range request after a failure,
and retries with exponential backoff. Only a file that has the expected size and checksum
(when known) and passes the loader's full validation is renamed to its final name: a file
under the final name is always complete. A failed validation deletes the partial file; a
failed connection keeps it, so that the next attempt resumes where this one stopped.
"""
from __future__ import annotations

import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from harness.data.format import validate_file
from harness.data.registry import DatasetInfo, dataset_path
from harness.errors import DatasetError, DownloadError
from harness.files import sha256_file

BLOCK = 1 << 20
#: without a terminal (a log): a plain line of bytes received at most this often, seconds
LINE_EVERY_S = 30.0
USER_AGENT = "gpnn-harness dataset downloader"
# Failures worth another attempt: refused/reset connections, timeouts, DNS, short bodies.
TRANSIENT = (urllib.error.URLError, OSError, http.client.HTTPException)


class _Retry(Exception):
    """An attempt failed in a way another attempt may fix; the reason is the message."""


@dataclass
class _Target:
    info: DatasetInfo
    url: str
    final: Path
    part: Path


def download(
    info: DatasetInfo,
    data_dir: Path,
    *,
    force: bool = False,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 0.5,
) -> Path:
    """Fetch `info`'s file over HTTP into `data_dir` and return its path (HTTP only: whether a
    file is needed at all, or generated instead, is the loader's decision, `loader.obtain`).

    A present file is returned as is unless `force`. The file is checked (size, checksum, the
    format) before it gets its name. `retries` is the number of attempts after the first;
    attempt n waits `backoff * 2**n` s.
    """
    final = dataset_path(info, data_dir)
    if final.is_file() and not force:
        return final
    if not info.url:
        raise DownloadError(f"dataset {info.name} has no download URL", hint=_by_hand_hint(info, final))
    final.parent.mkdir(parents=True, exist_ok=True)
    target = _Target(info, info.url, final, final.with_name(final.name + ".part"))
    if force:
        target.part.unlink(missing_ok=True)
    _fetch_with_retries(target, progress, retries, timeout, backoff)
    _verify(target)
    os.replace(target.part, target.final)
    return target.final


def _by_hand_hint(info: DatasetInfo, final: Path) -> str:
    return (
        f"download it elsewhere and place it at {final.absolute()}, "
        f"or run `python -m harness datasets download {info.name}` when online"
    )


def _fetch_with_retries(target: _Target, progress: bool, retries: int, timeout: float, backoff: float) -> None:
    reason = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _attempt(target, progress, timeout)
            return
        except _Retry as exc:
            reason = str(exc)
    raise DownloadError(
        f"cannot download {target.info.name} from {target.url}: {reason} (after {_attempts(retries + 1)})",
        hint=_by_hand_hint(target.info, target.final),
    )


def _attempts(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def _attempt(target: _Target, progress: bool, timeout: float) -> None:
    """One request: resume `.part` if it exists; raise _Retry on a transient failure."""
    offset = target.part.stat().st_size if target.part.exists() else 0
    expected = target.info.size_bytes
    if expected is not None and offset == expected:
        return
    if expected is not None and offset > expected:
        target.part.unlink()
        offset = 0
    request = urllib.request.Request(target.url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            _receive(target, response, offset, progress)
    except urllib.error.HTTPError as exc:
        _http_error(target, exc, offset)
    except _Retry:
        raise
    except TRANSIENT as exc:
        raise _Retry(_describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, TimeoutError):
        return f"could not connect ({exc.reason})"
    if isinstance(exc, (TimeoutError, urllib.error.URLError)):
        return "the server did not answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _http_error(target: _Target, exc: urllib.error.HTTPError, offset: int) -> None:
    """Decide what an HTTP error status means: resume problem, server trouble, or a bad URL."""
    if exc.code == 416 and offset:
        # The range starts at or past the end: either the part is complete or it is wrong.
        total = _total_from_content_range(exc.headers.get("Content-Range", ""))
        if total == offset:
            return
        target.part.unlink(missing_ok=True)
        raise _Retry("the partial file did not match the server's file; restarting")
    if exc.code >= 500 or exc.code in (408, 429):
        raise _Retry(f"HTTP {exc.code} {exc.reason}")
    raise DownloadError(
        f"cannot download {target.info.name}: {target.url} answered HTTP {exc.code} {exc.reason}",
        hint=_by_hand_hint(target.info, target.final)
        + "; if the server moved, set GPNN_DATASET_URL to a mirror",
    )


def _total_from_content_range(value: str) -> int | None:
    match = re.search(r"/(\d+)\s*$", value or "")
    return int(match.group(1)) if match else None


def _receive(target: _Target, response: http.client.HTTPResponse, offset: int, progress: bool) -> None:
    """Stream the body to `.part`, appending after a 206 or restarting after a 200."""
    if response.status == 206:
        start = _range_start(response.headers.get("Content-Range", ""))
        if start != offset:
            target.part.unlink(missing_ok=True)
            raise _Retry(f"the server resumed at byte {start}, not {offset}; restarting")
    else:
        offset = 0  # the server ignored the Range request: start over
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length is not None and length.isdigit() else None
    with open(target.part, "ab" if offset else "wb") as sink:
        received = _copy(response, sink, target.info.name, offset, total, progress)
    if total is not None and received < total:
        raise _Retry(f"the connection closed after {received} of {total} bytes")


def _range_start(value: str) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-", value or "")
    return int(match.group(1)) if match else None


def _copy(response: BinaryIO, sink: BinaryIO, label: str, offset: int, total: int | None, progress: bool) -> int:
    """Copy the body in blocks with a byte progress bar (on a terminal; elsewhere, such as a
    log, a plain line every LINE_EVERY_S and one at the end); return the bytes now in the file."""
    received = offset
    terminal = sys.stderr.isatty()
    said = time.monotonic()
    with tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
        desc=label, file=sys.stderr, disable=not progress or not terminal,
    ) as bar:
        while block := response.read(BLOCK):
            sink.write(block)
            received += len(block)
            bar.update(len(block))
            if progress and not terminal and time.monotonic() - said >= LINE_EVERY_S:
                said = time.monotonic()
                _say(label, received, total)
    if progress and not terminal:
        _say(label, received, total)
    return received


def _say(label: str, received: int, total: int | None) -> None:
    """One plain line of a download's progress (for a log, where a bar's redraws pile up)."""
    of = f" of {total / 2**20:.1f} MiB ({100 * received / total:.0f}%)" if total else ""
    print(f"download {label}: {received / 2**20:.1f} MiB{of}", file=sys.stderr, flush=True)


def _verify(target: _Target) -> None:
    """Size, checksum and full validation of `.part`; a file failing any of them is deleted."""
    info, part = target.info, target.part
    problem = None
    size = part.stat().st_size
    if info.size_bytes is not None and size != info.size_bytes:
        problem = f"size: expected {info.size_bytes} bytes, found {size}"
    elif info.sha256 and (digest := sha256_file(part)) != info.sha256.lower():
        problem = f"sha256: expected {info.sha256}, found {digest}"
    else:
        try:
            validate_file(part)
        except DatasetError as exc:
            problem = exc.message
    if problem:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"the file downloaded for {info.name} from {target.url} is not a valid dataset and was deleted: {problem}",
            hint="try again later; if it keeps failing, " + _by_hand_hint(info, target.final),
        )
