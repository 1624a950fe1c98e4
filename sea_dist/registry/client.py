"""Python client of the read-only HTTP API (over httpx): the same queries as :class:`Registry`.

``open_registry("http://127.0.0.1:8765")`` returns an :class:`HttpRegistry`, so the CLI and
``load_artifact(ref, registry="http://...")`` work against a served registry. Every answer is
streamed and read up to a size limit (:func:`~sea_dist.registry.responses.read_bounded`).
Downloads are checked twice: the body against the ``X-Content-SHA256`` header and, as for every
load, the full artifact verification (layout, checksum against the manifest, shapes).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from sea_dist.errors import ArtifactError, RegistryError, excerpt, expected_found
from sea_dist.format.artifact import MissingArtifactFileError
from sea_dist.format.files import MANIFEST_FILE, PROJECTIONS_FILE
from sea_dist.format.manifest import Manifest, manifest_from_dict, manifest_from_json
from sea_dist.format.tensors import sha256_hex
from sea_dist.registry.loader import (
    Artifact,
    Framework,
    artifact_from_bytes,
    check_download_dest,
    write_local_copy,
)
from sea_dist.registry.refs import NotFoundError, Resolved, check_alias, check_name, parse_ref
from sea_dist.registry.responses import (
    MAX_JSON_BYTES,
    MAX_JSON_SECONDS,
    NOT_THE_API,
    aliases_answer,
    check_name_value,
    check_sha256,
    check_version,
    diff_answer,
    field,
    history_answer,
    names_answer,
    parse_json,
    read_bounded,
    versions_answer,
)

MAX_DOWNLOAD_BYTES = 16 << 30  # 16 GiB: an 80-layer d = 8192 edit at k ~ d/4 in float32
MAX_ERROR_BYTES = 64 << 10

# httpx logs every request at INFO, which the CLI's INFO logging would print as noise on stderr
# for each query; its warnings stay. A level set by the application is kept.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _error_answer(response: httpx.Response, address: str) -> Exception:
    """The exception for an HTTP error status, typed by the API's JSON error document."""
    try:
        body = read_bounded(
            response.iter_raw(), MAX_ERROR_BYTES, address, max_seconds=MAX_JSON_SECONDS
        )
        info = json.loads(body)["error"]
        message, kind = str(info["message"]), str(info["type"])
    except (ValueError, KeyError, TypeError, RecursionError, RegistryError, httpx.HTTPError):
        reason = excerpt(response.reason_phrase)
        message = f"{address}: HTTP {response.status_code} {reason}; {NOT_THE_API}"
        kind = "RegistryError"
    message = message if len(message) <= 500 else message[:500] + "... (cut)"
    if kind == MissingArtifactFileError.__name__:  # a damaged version, not a bad ref
        return MissingArtifactFileError(message)
    if response.status_code == 404:
        return NotFoundError(message)
    if kind == "ArtifactError":
        return ArtifactError(message)
    return RegistryError(message)


class HttpRegistry:
    """Query a registry served by ``sea-dist registry serve``.

    Nothing the server sends is trusted: answers are read up to a size limit, JSON answers must
    be JSON of the API's schema (:mod:`sea_dist.registry.responses`), and downloads are bounded
    by the size the manifest states and by ``max_download_bytes``. Connections are kept alive
    between queries; :meth:`close` (or ``with HttpRegistry(...)``) releases them.

    Args:
        url: base address, e.g. ``http://127.0.0.1:8765``.
        timeout: seconds per socket operation (connect, each read).
        max_download_bytes: the largest projections file a download accepts.
        max_answer_seconds: the longest a JSON answer may take to arrive in full.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        max_answer_seconds: float = MAX_JSON_SECONDS,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_download_bytes = max_download_bytes
        self.max_answer_seconds = max_answer_seconds
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._lock:  # made on first use: an unused client opens nothing
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self.timeout,
                    follow_redirects=True,
                    # Bodies are counted as they arrive on the wire: no compressed answers,
                    # whose decoded size the limits could not bound.
                    headers={"Accept-Encoding": "identity"},
                )
            return self._client

    def close(self) -> None:
        """Close the kept-alive connections (the client opens new ones if used again)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> HttpRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_client", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _client=None, _lock=threading.Lock())

    def _request(
        self,
        path: str,
        params: dict[str, str | None] | None = None,
        *,
        limit: int = MAX_JSON_BYTES,
        timed: bool = True,
    ) -> tuple[bytes, dict[str, str], str]:
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        address = f"{self.url}/v1/{path}" + (f"?{query}" if query else "")
        try:
            with self._http().stream("GET", address) as response:
                if response.status_code >= 400:
                    raise _error_answer(response, address)
                headers = {k.lower(): v for k, v in response.headers.items()}
                encoding = headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise RegistryError(
                        expected_found(
                            address, "an uncompressed answer", f"Content-Encoding {encoding}"
                        )
                    )
                body = read_bounded(
                    response.iter_raw(),
                    limit,
                    address,
                    announced=headers.get("content-length"),
                    max_seconds=self.max_answer_seconds if timed else None,
                )
                return body, headers, address
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
            raise RegistryError(
                expected_found(
                    "registry", "a reachable sea-dist registry server", self.url, f"{error}"
                )
            ) from None

    def _json(self, path: str, params: dict[str, str | None] | None = None) -> tuple[Any, str]:
        body, headers, address = self._request(path, params)
        return parse_json(body, headers.get("content-type"), address), address

    def names(self) -> list[str]:
        return names_answer(*self._json("names"))

    def versions(
        self,
        name: str,
        *,
        model_id: str | None = None,
        dataset: str | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {"model_id": model_id, "dataset": dataset, "after": after, "before": before}
        data, address = self._json(f"names/{quote(check_name(name))}/versions", params)
        return versions_answer(data, name, address)

    def resolve(self, ref: str) -> Resolved:
        wanted = parse_ref(ref)
        data, address = self._json(f"resolve/{quote(ref, safe='@:')}")
        resolved = Resolved(
            name=check_name_value(field(data, "name", str, address), "name", address),
            version=check_version(field(data, "version", int, address), "version", address),
            sha256=check_sha256(field(data, "sha256", str, address), "sha256", address),
        )
        # The answer must be an answer to this question, not to another one.
        if (wanted.name and resolved.name != wanted.name) or (
            wanted.version and resolved.version != wanted.version
        ):
            raise RegistryError(expected_found(address, f"a version of {ref}", resolved.ref))
        if wanted.sha256 and not resolved.sha256.startswith(wanted.sha256):
            raise RegistryError(
                expected_found(
                    address, f"a version whose sha256 starts {wanted.sha256}", resolved.sha256
                )
            )
        return resolved

    def manifest(self, ref: str) -> Manifest:
        resolved = self.resolve(ref)
        data, address = self._json(f"artifacts/{resolved.name}/{resolved.version}/manifest")
        return manifest_from_dict(data, f"{address} {MANIFEST_FILE}")

    def aliases(self, name: str) -> dict[str, int]:
        return aliases_answer(*self._json(f"names/{quote(check_name(name))}/aliases"))

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        path = f"names/{quote(check_name(name))}/aliases/{quote(check_alias(alias))}/history"
        return history_answer(*self._json(path))

    def diff(self, a: str, b: str) -> dict[str, Any]:
        parse_ref(a), parse_ref(b)  # a malformed reference is the caller's error, not the server's
        return diff_answer(*self._json("diff", {"a": a, "b": b}))

    def _file(self, resolved: Resolved, file_name: str, limit: int) -> bytes:
        body, headers, address = self._request(
            f"artifacts/{resolved.name}/{resolved.version}/files/{file_name}",
            limit=limit,
            timed=False,  # a large download may take long; each read has its own timeout
        )
        announced = headers.get("x-content-sha256")
        if announced != sha256_hex(body):
            raise ArtifactError(
                expected_found(
                    f"{address}",
                    f"a body with sha256 {excerpt(announced)}",
                    sha256_hex(body),
                    "download it again",
                )
            )
        return body

    def _fetch(self, resolved: Resolved) -> tuple[bytes, bytes]:
        manifest_raw = self._file(resolved, MANIFEST_FILE, MAX_JSON_BYTES)
        # The manifest states the projections' size: read no more than that (and the cap).
        size = manifest_from_json(
            manifest_raw, f"{self.url} {resolved.ref} {MANIFEST_FILE}"
        ).size_bytes
        if size > self.max_download_bytes:
            raise RegistryError(
                expected_found(
                    f"{self.url} {resolved.ref} {PROJECTIONS_FILE}",
                    f"at most max_download_bytes={self.max_download_bytes} bytes",
                    f"{size} bytes stated by the manifest",
                    "raise HttpRegistry(max_download_bytes=...) if this artifact is genuine",
                )
            )
        return manifest_raw, self._file(resolved, PROJECTIONS_FILE, size)

    def _verified(self, ref: str, framework: Framework) -> tuple[Artifact, bytes, bytes]:
        resolved = self.resolve(ref)
        manifest_raw, projections = self._fetch(resolved)
        artifact = artifact_from_bytes(
            manifest_raw, projections, f"{self.url}/{resolved.ref}", framework
        )
        if artifact.manifest.sha256 != resolved.sha256:
            raise ArtifactError(
                expected_found(
                    f"{self.url} {resolved.ref} manifest sha256",
                    resolved.sha256,
                    artifact.manifest.sha256,
                )
            )
        return artifact, manifest_raw, projections

    def load(self, ref: str, framework: Framework = "numpy") -> Artifact:
        return self._verified(ref, framework)[0]

    def download(self, ref: str, dest: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        check_download_dest(dest, overwrite)  # before fetching anything
        _, manifest_raw, projections = self._verified(ref, "numpy")
        return write_local_copy(dest, manifest_raw, projections, overwrite=overwrite)
