"""Fetch the raw table: https/file URL or path, a CSV or a tar.gz holding one CSV."""

import hashlib
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from housing_mlops.config.schema import DownloadConfig
from housing_mlops.errors import DataSourceError

ARCHIVES = (".tgz", ".tar.gz")
SUFFIXES = (".csv", *ARCHIVES)
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_remote(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https")


def local_path(source: str) -> Path:
    """The filesystem path of a `file://` URL or plain path (relative to the working dir)."""
    parsed = urlparse(source)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(source)


def fingerprint(source: str, sha256: str | None) -> str | None:
    """What identifies the source's content without downloading it, or None if nothing does.

    A local file is identified by its bytes; a URL only by the checksum it must match, so an
    unpinned URL is never cached (downstream steps still are, keyed on the data's digest).
    """
    if is_remote(source):
        return f"pinned:{sha256}" if sha256 else None
    path = local_path(source)
    return f"file:{sha256_file(path)}" if path.is_file() else None


def fetch(source: str, download: DownloadConfig, workdir: Path) -> Path:
    """Return a local path to the CSV named by `source`, downloading and unpacking as needed."""
    name = Path(unquote(urlparse(source).path)).name if is_remote(source) else local_path(source).name
    if not name.endswith(SUFFIXES):
        raise DataSourceError(f"data source {source}: expected a file ending in {', '.join(SUFFIXES)}")
    if is_remote(source):
        path = _download(source, workdir / name, download)
    else:
        path = local_path(source)
        if not path.is_file():
            raise DataSourceError(f"data file not found: {path.resolve()} (set data.source or HOUSING_DATA_SOURCE)")
    return _unpack(path, workdir) if name.endswith(ARCHIVES) else path


def verify(path: Path, expected: str | None) -> str:
    """sha256 of the CSV; raise if it differs from the pinned `data.sha256`."""
    actual = sha256_file(path)
    if expected and actual != expected.lower():
        raise DataSourceError(
            f"checksum mismatch for {path.name}: sha256 {actual}, expected {expected} "
            "(data.sha256; set data.sha256=null to accept a different file)"
        )
    return actual


def _download(url: str, dest: Path, download: DownloadConfig) -> Path:
    attempts = download.retries + 1
    delay = download.backoff_s
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=download.timeout_s) as response, dest.open("wb") as out:
                shutil.copyfileobj(response, out, _CHUNK)
            return dest
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == attempts:  # a 4xx will not heal by retrying
                raise DataSourceError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            if attempt == attempts:
                reason = getattr(exc, "reason", exc)
                raise DataSourceError(
                    f"cannot download {url} after {attempts} attempts: {reason} "
                    "(check the URL and network, or point HOUSING_DATA_SOURCE at a local file)"
                ) from exc
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _unpack(archive: Path, workdir: Path) -> Path:
    try:
        with tarfile.open(archive, "r:*") as tar:
            csvs = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".csv")]
            if len(csvs) != 1:
                found = [m.name for m in csvs]
                raise DataSourceError(f"archive {archive.name} must hold exactly one CSV, found {found}")
            source = tar.extractfile(csvs[0])
            if source is None:  # pragma: no cover - isfile() members always extract
                raise DataSourceError(f"archive {archive.name}: cannot read {csvs[0].name}")
            dest = workdir / Path(csvs[0].name).name
            with source, dest.open("wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
            return dest
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataSourceError(f"archive {archive.name} cannot be read as tar.gz: {exc}") from exc
