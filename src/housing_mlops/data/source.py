"""Fetch the raw table: https/file URL or path, a CSV or a tar.gz holding one CSV."""

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

import tenacity

from housing_mlops.config.data import DownloadConfig
from housing_mlops.errors import DataSourceError

ARCHIVES = (".tgz", ".tar.gz")
SUFFIXES = (".csv", *ARCHIVES)
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def is_remote(source: str) -> bool:
    """Whether `source` is an http(s) URL rather than a path or file:// URL."""
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
    """Download `url` to `dest`, retrying network errors and 5xx with exponential backoff."""
    attempts = download.retries + 1
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=download.backoff_s),  # backoff_s, 2x, 4x, ...
        retry=tenacity.retry_if_exception(_transient),
        reraise=True,
    )
    try:
        retrying(_get, url, dest, download.timeout_s)
    except urllib.error.HTTPError as exc:
        raise DataSourceError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except OSError as exc:  # URLError, refused or reset connections, timeouts
        reason = getattr(exc, "reason", exc)
        raise DataSourceError(
            f"cannot download {url} after {attempts} attempts: {reason} "
            "(check the URL and network, or point HOUSING_DATA_SOURCE at a local file)"
        ) from exc
    return dest


def _get(url: str, dest: Path, timeout_s: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout_s) as response, dest.open("wb") as out:
        shutil.copyfileobj(response, out, _CHUNK)


def _transient(exc: BaseException) -> bool:
    """A network error or a 5xx may heal by retrying; a 4xx will not."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500
    return isinstance(exc, OSError)  # URLError and TimeoutError are OSErrors


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
