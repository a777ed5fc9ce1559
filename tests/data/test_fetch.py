"""Downloads: retries after a dropped connection, resume of a partial file by HTTP Range, and a
checksum check before the file appears. Served by a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ecellm.data.fetch import _download
from ecellm.errors import EnvironmentProblem, InputError

BODY = bytes(range(256)) * 4096  # 1 MiB


class _Server:
    """Serves BODY at /file with Range support; the first ``drops`` GETs send half and hang up."""

    def __init__(self, drops: int = 0, status: int = 200) -> None:
        self.drops, self.status, self.ranges = drops, status, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                if outer.status != 200:
                    self.send_error(outer.status)
                    return
                start = int(rng.split("=")[1].rstrip("-")) if rng else 0
                body = BODY[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
                self.end_headers()
                if outer.drops > 0:
                    outer.drops -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(request):
    s = _Server(**getattr(request, "param", {}))
    yield s
    s.close()


@pytest.mark.parametrize("server", [{"drops": 2}], indirect=True)
def test_dropped_connections_are_retried_from_the_bytes_already_received(server, tmp_path: Path):
    target = tmp_path / "raw" / "file.bin"
    digest = _download(server.url, target, sha256=hashlib.sha256(BODY).hexdigest(), backoff=0)
    assert target.read_bytes() == BODY and digest == hashlib.sha256(BODY).hexdigest()
    assert not (tmp_path / "raw" / "file.bin.part").exists()
    # first request whole, then each retry asks only for what is missing
    half, quarter = len(BODY) // 2, len(BODY) // 2 + len(BODY) // 4
    assert server.ranges == [None, f"bytes={half}-", f"bytes={quarter}-"]


def test_a_partial_file_from_an_earlier_run_is_resumed(server, tmp_path: Path):
    target = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(BODY[:1000])
    _download(server.url, target, backoff=0)
    assert target.read_bytes() == BODY and server.ranges == ["bytes=1000-"]


@pytest.mark.parametrize("server", [{"drops": 5}], indirect=True)
def test_giving_up_keeps_the_part_and_says_how_to_resume(server, tmp_path: Path):
    target = tmp_path / "file.bin"
    with pytest.raises(EnvironmentProblem, match="run again to resume from"):
        _download(server.url, target, retries=1, backoff=0)
    assert not target.exists() and (tmp_path / "file.bin.part").stat().st_size > 0
    assert len(server.ranges) == 2


def test_checksum_mismatch_leaves_no_file(server, tmp_path: Path):
    target = tmp_path / "file.bin"
    with pytest.raises(InputError, match="field 'sha256': checksum mismatch"):
        _download(server.url, target, sha256="0" * 64, backoff=0)
    assert not target.exists() and not (tmp_path / "file.bin.part").exists()


@pytest.mark.parametrize("server", [{"status": 404}], indirect=True)
def test_client_errors_are_not_retried(server, tmp_path: Path):
    with pytest.raises(InputError, match="HTTP 404"):
        _download(server.url, tmp_path / "file.bin", backoff=0)
    assert len(server.ranges) == 1


def test_progress_counts_every_byte(server, tmp_path: Path):
    from ecellm.log import progress

    with progress(transfer=True, disable=True) as bar:
        _download(server.url, tmp_path / "file.bin", bar=bar, backoff=0)
        (task,) = bar.tasks
        assert (task.completed, task.total) == (len(BODY), len(BODY))
