"""Fetch a table from an https/file URL or path: the raw data (CSV, or tar.gz of one CSV), a batch (CSV, parquet)."""

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import tenacity

from housing_mlops.config.data import DownloadConfig
from housing_mlops.errors import DataSourceError

ARCHIVES = (".tgz", ".tar.gz")
SUFFIXES = (".csv", *ARCHIVES)
TABLES = (".csv", ".parquet")
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
    path = _local(source, SUFFIXES, download, workdir, "data", "(set data.source or HOUSING_DATA_SOURCE)")
    return _unpack(path, workdir) if path.name.endswith(ARCHIVES) else path


def read_table(source: str, download: DownloadConfig, workdir: Path, what: str = "table") -> pd.DataFrame:
    """The .csv or .parquet table at `source` (path, file:// or http(s) URL, downloaded with retries)."""
    path = _local(source, TABLES, download, workdir, what, "")
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataSourceError(f"{what} {path} cannot be read as {path.suffix.lstrip('.')}: {first}") from exc


def _local(
    source: str, suffixes: tuple[str, ...], download: DownloadConfig, workdir: Path, what: str, hint: str
) -> Path:
    """A local copy of `source` (downloaded when it is a URL), whose name must end in one of `suffixes`."""
    name = Path(unquote(urlparse(source).path)).name if is_remote(source) else local_path(source).name
    if not name.endswith(suffixes):
        raise DataSourceError(f"{what} {source}: expected a file ending in {', '.join(suffixes)}")
    if is_remote(source):
        return _download(source, workdir / name, download)
    path = local_path(source)
    if not path.is_file():
        raise DataSourceError(f"{what} file not found: {path.resolve()} {hint}".rstrip())
    return path


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
