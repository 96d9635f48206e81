"""Fetching the data: paths, file:// and http URLs on a local server, archives, checksums."""

import http.server
import io
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from housing_mlops.config.data import DownloadConfig
from housing_mlops.data.source import fetch, fingerprint, sha256_file, verify
from housing_mlops.errors import DataSourceError

FAST = DownloadConfig(timeout_s=2.0, retries=2, backoff_s=0.01)


def make_tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


class _Handler(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - per-server list, reset by the fixture

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path.startswith("/flaky") and len([h for h in self.hits if h == self.path]) == 1:
            self.send_error(503, "warming up")
            return
        self.path = self.path.replace("/flaky", "")
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """An HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    hits: list[str] = []
    handler = type("H", (_Handler,), {"hits": hits})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www, hits
    httpd.shutdown()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_local_path_and_file_url(tmp_path: Path, sample_csv: Path) -> None:
    assert fetch(str(sample_csv), FAST, tmp_path) == sample_csv
    assert fetch(sample_csv.as_uri(), FAST, tmp_path) == sample_csv


def test_tgz_with_one_csv_is_unpacked(tmp_path: Path, sample_csv: Path) -> None:
    archive = make_tgz(tmp_path / "housing.tgz", {"housing/housing.csv": sample_csv.read_bytes()})
    out = fetch(str(archive), FAST, tmp_path)
    assert out.read_bytes() == sample_csv.read_bytes()


def test_http_download_of_tgz(server, tmp_path: Path, sample_csv: Path) -> None:
    url, www, _ = server
    make_tgz(www / "housing.tgz", {"housing/housing.csv": sample_csv.read_bytes()})
    out = fetch(f"{url}/housing.tgz", FAST, tmp_path)
    assert sha256_file(out) == sha256_file(sample_csv)


def test_http_5xx_is_retried(server, tmp_path: Path, sample_csv: Path) -> None:
    url, www, hits = server
    (www / "h.csv").write_bytes(sample_csv.read_bytes())
    out = fetch(f"{url}/flaky/h.csv", FAST, tmp_path)
    assert out.read_bytes() == sample_csv.read_bytes()
    assert hits == ["/flaky/h.csv", "/flaky/h.csv"]


def test_http_404_fails_at_once(server, tmp_path: Path) -> None:
    url, _, hits = server
    with pytest.raises(DataSourceError, match=r"cannot download .*/nothere\.csv: HTTP 404"):
        fetch(f"{url}/nothere.csv", FAST, tmp_path)
    assert len(hits) == 1


def test_unreachable_url_retries_then_names_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/housing.csv"
    with pytest.raises(DataSourceError, match=rf"cannot download {url} after 3 attempts"):
        fetch(url, FAST, tmp_path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"data file not found: .*nope\.csv"):
        fetch(str(tmp_path / "nope.csv"), FAST, tmp_path)


def test_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"expected a file ending in \.csv"):
        fetch(str(tmp_path / "data.json"), FAST, tmp_path)


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ({"README": b"hi"}, r"exactly one CSV, found \[\]"),
        ({"a.csv": b"x\n1\n", "b.csv": b"x\n2\n"}, r"exactly one CSV, found \['a.csv', 'b.csv'\]"),
    ],
)
def test_archive_without_exactly_one_csv(tmp_path: Path, members: dict, match: str) -> None:
    archive = make_tgz(tmp_path / "bad.tgz", members)
    with pytest.raises(DataSourceError, match=match):
        fetch(str(archive), FAST, tmp_path)


def test_corrupt_archive(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(DataSourceError, match=r"bad\.tgz cannot be read"):
        fetch(str(bad), FAST, tmp_path)


def test_checksum(sample_csv: Path) -> None:
    actual = sha256_file(sample_csv)
    assert verify(sample_csv, actual) == actual
    assert verify(sample_csv, None) == actual
    with pytest.raises(DataSourceError, match=r"checksum mismatch for housing_sample\.csv.*data\.sha256"):
        verify(sample_csv, "0" * 64)


def test_fingerprint(tmp_path: Path, sample_csv: Path) -> None:
    assert fingerprint(str(sample_csv), None) == f"file:{sha256_file(sample_csv)}"
    assert fingerprint("https://example.invalid/h.csv", "ab") == "pinned:ab"
    assert fingerprint("https://example.invalid/h.csv", None) is None
    assert fingerprint(str(tmp_path / "missing.csv"), None) is None
