"""Atomic publication of a fit output as the next immutable version of a name.

The protocol works the same on a local folder and on S3 (which has no rename):

1. Read and validate the fit output (tensors, shapes, no pickle), build the manifest (with the
   recipe and evaluation record: given explicitly, else the fit output's ``recipe.json`` /
   ``evaluation.json``, else none).
2. Stage: write both files under ``<name>/staging/<token>/`` and read them back to verify the
   sha256 and layout of what storage actually holds.
3. Claim: ``v = max(claims) + 1``; create ``<name>/claims/<v>.json`` *exclusively* (``O_EXCL``
   locally, a conditional put ``If-None-Match: *`` on S3). Whoever loses the race re-lists the
   claims and tries the next number, so concurrent publishers get distinct versions and none
   is lost. Claims are never deleted, so a version number is never reused.
4. Move the staged projections to ``<name>/versions/<v>/``, write the final manifest (now with
   its version), check the size of what landed.
5. Write the completion marker ``<name>/complete/<v>.json`` LAST, exclusively and whole (temp
   file + ``os.link`` locally, one conditional put on S3). It records the sha256 of the tensors,
   of the manifest as it landed and of the version's listing-index row (see
   :mod:`sea_dist.registry.markers`), which every load and listing checks. Readers list
   only versions with a valid marker, so they never see a partial version.
   A publisher that dies between 3 and 5 (or a disk that fills while writing the marker) leaves
   a claimed number with no visible version (a gap), never a half-written one.
6. Refresh ``<name>/index.parquet`` (best effort: queries check it and never write it, so the
   publisher keeps it current; a failure here leaves the version published).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sea_dist.errors import ArtifactError, RegistryError
from sea_dist.format.anchors import (
    COMPLETE_DIR,
    check_manifest_digest,
    manifest_digest,
    marker_bytes,
)
from sea_dist.format.artifact import verify_projections
from sea_dist.format.files import MANIFEST_FILE, PROJECTIONS_FILE
from sea_dist.format.manifest import manifest_from_json
from sea_dist.format.recipe import EditRecipe, EvaluationRecord
from sea_dist.registry.fitdir import build_manifest, read_fit_output
from sea_dist.registry.gate import promote
from sea_dist.registry.manifest import utc_now
from sea_dist.registry.markers import complete_markers
from sea_dist.registry.protocol import WritableRegistry
from sea_dist.registry.refs import Resolved, check_alias, check_name
from sea_dist.registry.storage import Storage

MAX_CLAIM_ATTEMPTS = 10_000
log = logging.getLogger(__name__)


def _claimed(storage: Storage, name: str) -> list[int]:
    return [
        int(entry.removesuffix(".json"))
        for entry in storage.list_dir(name, "claims")
        if entry.endswith(".json") and entry.removesuffix(".json").isdigit()
    ]


def claim_version(storage: Storage, name: str, token: str) -> int:
    """Claim the next free version number of ``name`` for the publisher ``token``.

    Raises:
        RegistryError: no number could be claimed after many attempts (a storage problem).
    """
    for _ in range(MAX_CLAIM_ATTEMPTS):
        version = max(_claimed(storage, name), default=0) + 1
        payload = json.dumps({"version": version, "token": token, "claimed_at": utc_now()})
        if storage.create_exclusive(payload.encode("utf-8"), name, "claims", f"{version}.json"):
            if storage.atomic_create:
                return version
            # Backends without an atomic create: the last writer wins, so read back who did.
            if json.loads(storage.read_bytes(name, "claims", f"{version}.json"))["token"] == token:
                return version
    raise RegistryError(
        f"publish {name}: expected to claim a version number, found "
        f"{MAX_CLAIM_ATTEMPTS} conflicts; check the registry storage"
    )


def publish(
    registry: WritableRegistry,
    fit_dir: str | os.PathLike[str],
    name: str,
    aliases: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    created_at: str | None = None,
    input_fingerprint: str | None = None,
    *,
    recipe: EditRecipe | None = None,
    evaluation: EvaluationRecord | None = None,
    gated_aliases: Sequence[str] | None = None,
) -> Resolved:
    """Publish a fit-output folder as the next version of ``name`` in ``registry``.

    Args:
        registry: a writable registry.
        fit_dir: fit output (``fit.json`` + ``projections.safetensors``, optionally
            ``recipe.json`` and ``evaluation.json``), folder or URL.
        name: artifact name (lowercase ``[a-z0-9._-]``, at most 100 characters).
        aliases: user aliases to move to the new version, each through the promotion gate
            when it is gated (:func:`sea_dist.registry.gate.promote`); a refused alias is
            left where it was and logged (call ``promote`` to see the verdict).
        config: the full resolved run config, recorded in the manifest.
        created_at: override the publication time (ISO-8601; imports, tests).
        input_fingerprint: fingerprint of the run's inputs (the scheduler compares it).
        recipe: the edit recipe (wins over the fit output's ``recipe.json``).
        evaluation: the evaluation record (wins over the fit output's ``evaluation.json``).
        gated_aliases: the gated aliases (default ``publish.gated_aliases``' default).

    Returns:
        The new version.
    """
    for alias in aliases:
        check_alias(alias)
    resolved = publish_files(
        registry.storage,
        os.fspath(fit_dir),
        name,
        config,
        created_at,
        input_fingerprint,
        recipe=recipe,
        evaluation=evaluation,
    )
    for alias in aliases:
        result = promote(registry, name, resolved.version, alias, gated_aliases=gated_aliases)
        if not result.moved:
            log.warning("%s", result.line())
    return resolved


def publish_files(
    storage: Storage,
    fit_dir: str,
    name: str,
    config: Mapping[str, Any] | None = None,
    created_at: str | None = None,
    input_fingerprint: str | None = None,
    *,
    recipe: EditRecipe | None = None,
    evaluation: EvaluationRecord | None = None,
) -> Resolved:
    """Publish the fit output at ``fit_dir`` as the next version of ``name`` (see module doc).

    Args:
        storage: registry storage.
        fit_dir: fit-output folder or fsspec URL.
        name: artifact name.
        config: full resolved run config for the manifest.
        created_at: override the publication timestamp (ISO-8601).
        input_fingerprint: fingerprint of the run's inputs, recorded in the manifest.
        recipe: the edit recipe (default: the fit output's ``recipe.json``, if any).
        evaluation: the evaluation record (default: the fit output's ``evaluation.json``).

    Returns:
        The published version.

    Raises:
        ArtifactError: the fit output is invalid or storage did not keep the bytes intact.
        RegistryError: an invalid name or a storage failure during the claim.
    """
    # The Parquet index (pyarrow, an optional dependency) loads only when something is published.
    from sea_dist.registry.index import row_digest, row_from_manifest

    check_name(name)
    fit_output = read_fit_output(fit_dir)
    manifest = build_manifest(
        fit_output,
        name,
        dict(config) if config else None,
        created_at,
        input_fingerprint,
        recipe=recipe,
        evaluation=evaluation,
    )
    token = uuid.uuid4().hex
    staging = (name, "staging", token)
    try:
        storage.write_bytes(fit_output.projections, *staging, PROJECTIONS_FILE)
        storage.write_bytes(manifest.to_json(), *staging, MANIFEST_FILE)
        staged = manifest_from_json(
            storage.read_bytes(*staging, MANIFEST_FILE), storage.display(*staging, MANIFEST_FILE)
        )
        verify_projections(
            staged,
            storage.read_bytes(*staging, PROJECTIONS_FILE),
            storage.display(*staging, PROJECTIONS_FILE),
        )

        version = claim_version(storage, name, token)
        final = dataclasses.replace(manifest, version=version)
        target = (name, "versions", str(version))
        storage.move((*staging, PROJECTIONS_FILE), (*target, PROJECTIONS_FILE))
        manifest_raw = final.to_json()
        storage.write_bytes(manifest_raw, *target, MANIFEST_FILE)
        landed = storage.size(*target, PROJECTIONS_FILE)
        if landed != final.size_bytes:
            raise ArtifactError(
                f"{storage.display(*target, PROJECTIONS_FILE)}: expected "
                f"{final.size_bytes} bytes, found {landed}; version {version} "
                "stays unpublished, publish again"
            )
        # The marker pins the manifest as it landed, so a field no tensor shape checks (site,
        # combine, model id, feature map) cannot be edited afterwards unnoticed.
        check_manifest_digest(
            storage.read_bytes(*target, MANIFEST_FILE),
            manifest_digest(manifest_raw),
            storage.display(*target, MANIFEST_FILE),
            "the manifest just written",
        )
        # The marker also pins the version's listing-index row, so index.parquet is checked.
        summary = row_digest(row_from_manifest(manifest_from_json(manifest_raw, "manifest")))
        marker = marker_bytes(
            version, final.sha256, manifest_digest(manifest_raw), utc_now(), summary
        )
        if not storage.create_exclusive(marker, name, COMPLETE_DIR, f"{version}.json"):
            raise RegistryError(
                f"publish {name}: expected version {version} to be ours, found "
                "it already completed; the registry storage lost a claim"
            )
    finally:
        try:
            storage.remove(*staging, recursive=True)
        except OSError as error:  # leftovers are removed by 'registry gc'
            log.warning("cannot remove staging %s: %s", storage.display(*staging), error)
    _refresh_index(storage, name)
    log.info("published %s@%d (sha256 %s)", name, version, final.sha256[:12])
    return Resolved(name=name, version=version, sha256=final.sha256)


def _refresh_index(storage: Storage, name: str) -> None:
    """Add the new version to the listing index (queries never write it; writers keep it)."""
    from sea_dist.registry.index import build_listing  # pyarrow, an optional dependency

    try:
        build_listing(storage, name, complete_markers(storage, name), write=True)
    except (OSError, ArtifactError) as error:  # published all the same; the next writer adds it
        log.warning("cannot refresh the index of %s: %s", storage.display(name), error)
