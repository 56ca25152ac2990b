"""Scenes where they live: URLs and object stores opened by GDAL with range requests, with deadlines,
and a read error's cause named (HTTP status, a stalled transfer, a missing archive)."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator

import rasterio
from rasterio.errors import NotGeoreferencedWarning

from geoseg.errors import RasterReadError, first_line

URL_SCHEMES = {"http://": "/vsicurl/http://", "https://": "/vsicurl/https://", "s3://": "/vsis3/",
               "gs://": "/vsigs/", "az://": "/vsiaz/", "zip://": "/vsizip/"}


# reading remote files: retries with back-off for transient HTTP errors (429, 5xx), an open that lists
# no folder, GDAL's own cache of the bytes read, merged range requests, and blocks decoded on one thread:
# measured on a 128 px-block COG read whole, GDAL's decoding threads fetched the same blocks again
# (1.0-2.6x the file's bytes from run to run with 2 threads; 1.0x with one, tests/test_remote.py)
REMOTE_ENV = {"GDAL_HTTP_MAX_RETRY": 4, "GDAL_HTTP_RETRY_DELAY": 0.5, "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
              "VSI_CACHE": "TRUE", "GDAL_HTTP_MULTIRANGE": "YES", "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
              "GDAL_HTTP_TIMEOUT": 60, "GDAL_NUM_THREADS": 1,
              # a server that trickles bytes: a transfer under 1 KB/s for 30 s is dropped (and retried), so no
              # read hangs without limit; the request as a whole has GDAL_HTTP_TIMEOUT
              "GDAL_HTTP_LOW_SPEED_TIME": 30, "GDAL_HTTP_LOW_SPEED_LIMIT": 1024}


def is_remote(path: str | os.PathLike) -> bool:
    """A URL or a GDAL virtual file system path: never checked or globbed as a local file."""
    text = os.fspath(path)
    return text.startswith("/vsi") or any(text.startswith(s) for s in URL_SCHEMES)


def gdal_path(path: str | os.PathLike) -> str:
    """The path GDAL opens for ``path``: URLs become ``/vsicurl/``, ``/vsis3/``, ``/vsigs/``,
    ``/vsiaz/`` or ``/vsizip/`` paths (credentials from the usual environment variables, as
    rasterio and GDAL read them); anything else is returned as it is."""
    text = os.fspath(path)
    for scheme, vsi in URL_SCHEMES.items():
        if text.startswith(scheme):
            rest = text[len(scheme):]
            if scheme == "zip://":  # zip://archive.zip!inner/path
                archive, _, inner = rest.partition("!")
                rest = f"{archive}/{inner.lstrip('/')}" if inner else archive
            return vsi + rest
    return text


def _http_status(url: str) -> str:
    """The status a server answers for the first byte of ``url`` ("206", "500"), or "" when it
    cannot be had in 10 s; asked only to name the cause of a failed read."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=0-0"}), timeout=10) as r:
            return str(r.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (OSError, ValueError):
        return ""


def remote_problem(path, exc: BaseException) -> str:
    """One line for a failed remote open or read: the cause (a status code, a time-out, a
    transfer that stalled), for a URL; for a local GDAL virtual path (``/vsizip/``) what is
    missing."""
    text, cause = "", exc
    while cause is not None:  # rasterio chains GDAL's own messages behind its own
        text, cause = f"{text} {cause}", cause.__cause__ or cause.__context__
    path = os.fspath(path).removeprefix("/vsicurl/")
    if not any(path.startswith(s) for s in URL_SCHEMES if s != "zip://"):
        return f"{path}: cannot be read ({first_line(exc)}); check that the archive and the file in it exist"
    found = re.search(r"HTTP (?:response )?(?:error )?code ?:? ?(\d{3})", text)
    status = found[1] if found else ""
    if not status and path.startswith(("http://", "https://")):
        status = _http_status(path)  # GDAL's read errors do not carry the status: ask once
    if status.startswith("5"):
        return f"{path}: the server failed (HTTP {status}); try again later, or check the server"
    if status == "404" or "No such file" in text or "does not exist" in text:
        return f"{path}: not found on the server (HTTP 404); check the URL"
    if status in ("401", "403") or "AccessDenied" in text or "credentials" in text.lower():
        return f"{path}: access denied (HTTP 401/403); check the URL or the credentials in the environment"
    if any(w in text.lower() for w in ("timed out", "timeout", "too slow")) or \
            (not status and path.startswith(("http://", "https://"))):
        return f"{path}: the server did not answer in time; check the network or try again"
    if status.startswith("2"):  # the server is there and answers, but the transfer broke off
        return (f"{path}: the server sent the data too slowly or broke off (HTTP {status}, then the read failed);"
                " check the network or try again")
    return f"{path}: not a readable remote raster (HTTP {status}: {first_line(exc)}); check the URL"


@contextlib.contextmanager
def open_remote(path: str | os.PathLike) -> Iterator[rasterio.io.DatasetReader]:
    """A remote scene opened by GDAL with ``REMOTE_ENV`` (retries, deadlines) for its whole life; a failure names
    its cause."""
    with rasterio.Env(**REMOTE_ENV):  # for the dataset's whole life: its reads are remote too
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                src = rasterio.open(gdal_path(path))
        except rasterio.errors.RasterioError as exc:
            raise RasterReadError(remote_problem(path, exc)) from None
        try:
            yield src
        finally:
            src.close()
