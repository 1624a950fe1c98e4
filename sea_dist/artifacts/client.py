"""Python client of the read-only HTTP API: the same queries as :class:`Registry`, over HTTP.

``open_registry("http://127.0.0.1:8765")`` returns an :class:`HttpRegistry`, so the CLI and
``load_artifact(ref, registry="http://...")`` work against a served registry. Downloads are
checked twice: the body against the ``X-Content-SHA256`` header and, as for every load, the
full artifact verification (layout, checksum against the manifest, shapes).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from sea_dist.artifacts.loader import (
    Artifact,
    Framework,
    MissingArtifactFileError,
    artifact_from_bytes,
    check_download_dest,
    write_local_copy,
)
from sea_dist.artifacts.manifest import (
    MANIFEST_FILE,
    PROJECTIONS_FILE,
    Manifest,
    manifest_from_dict,
)
from sea_dist.artifacts.refs import NotFoundError, Resolved, check_name
from sea_dist.artifacts.tensors import sha256_hex
from sea_dist.errors import ArtifactError, RegistryError, expected_found


class HttpRegistry:
    """Query a registry served by ``sea-dist registry serve``.

    Args:
        url: base address, e.g. ``http://127.0.0.1:8765``.
        timeout: seconds per request.
    """

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(
        self, path: str, params: dict[str, str | None] | None = None
    ) -> tuple[bytes, dict[str, str]]:
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        address = f"{self.url}/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as response:  # noqa: S310
                return response.read(), dict(response.headers.items())
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                info = json.loads(body)["error"]
                message, kind = str(info["message"]), str(info["type"])
            except (ValueError, KeyError, TypeError):
                message, kind = f"HTTP {error.code} from {address}", "RegistryError"
            if kind == MissingArtifactFileError.__name__:  # a damaged version, not a bad ref
                raise MissingArtifactFileError(message) from None
            if error.code == 404:
                raise NotFoundError(message) from None
            if kind == "ArtifactError":
                raise ArtifactError(message) from None
            raise RegistryError(message) from None
        except (urllib.error.URLError, OSError) as error:
            raise RegistryError(
                expected_found(
                    "registry", "a reachable sea-dist registry server", self.url, f"{error}"
                )
            ) from None

    def _json(self, path: str, params: dict[str, str | None] | None = None) -> Any:
        body, _ = self._request(path, params)
        return json.loads(body)

    def names(self) -> list[str]:
        return list(self._json("names")["names"])

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
        return list(self._json(f"names/{quote(check_name(name))}/versions", params)["versions"])

    def resolve(self, ref: str) -> Resolved:
        data = self._json(f"resolve/{quote(ref, safe='@:')}")
        return Resolved(name=data["name"], version=int(data["version"]), sha256=data["sha256"])

    def manifest(self, ref: str) -> Manifest:
        resolved = self.resolve(ref)
        data = self._json(f"artifacts/{resolved.name}/{resolved.version}/manifest")
        return manifest_from_dict(data, f"{self.url} {resolved.ref} {MANIFEST_FILE}")

    def aliases(self, name: str) -> dict[str, int]:
        return {
            k: int(v) for k, v in self._json(f"names/{check_name(name)}/aliases")["aliases"].items()
        }

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        return list(
            self._json(f"names/{check_name(name)}/aliases/{quote(alias)}/history")["history"]
        )

    def diff(self, a: str, b: str) -> dict[str, Any]:
        return dict(self._json("diff", {"a": a, "b": b}))

    def _fetch(self, resolved: Resolved) -> tuple[bytes, bytes]:
        files = {}
        for file_name in (MANIFEST_FILE, PROJECTIONS_FILE):
            body, headers = self._request(
                f"artifacts/{resolved.name}/{resolved.version}/files/{file_name}"
            )
            announced = {k.lower(): v for k, v in headers.items()}.get("x-content-sha256")
            if announced != sha256_hex(body):
                raise ArtifactError(
                    expected_found(
                        f"{self.url} {resolved.ref} {file_name}",
                        f"a body with sha256 {announced}",
                        sha256_hex(body),
                        "download it again",
                    )
                )
            files[file_name] = body
        return files[MANIFEST_FILE], files[PROJECTIONS_FILE]

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
