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
   :mod:`sea_dist.artifacts.markers`), which every load and listing checks. Readers list
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
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sea_dist.artifacts.fitdir import build_manifest, read_fit_output
from sea_dist.artifacts.index import build_listing, row_digest, row_from_manifest
from sea_dist.artifacts.loader import verify_projections
from sea_dist.artifacts.manifest import (
    MANIFEST_FILE,
    PROJECTIONS_FILE,
    manifest_from_json,
    utc_now,
)
from sea_dist.artifacts.markers import (
    COMPLETE_DIR,
    check_manifest_digest,
    complete_markers,
    manifest_digest,
    marker_bytes,
)
from sea_dist.artifacts.refs import Resolved, check_alias, check_name
from sea_dist.artifacts.storage import Storage
from sea_dist.errors import ArtifactError, RegistryError
from sea_dist.format.recipe import EditRecipe, EvaluationRecord

if TYPE_CHECKING:
    from sea_dist.artifacts.gate import PromotionResult

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
    try:
        build_listing(storage, name, complete_markers(storage, name), write=True)
    except (OSError, ArtifactError) as error:  # published all the same; the next writer adds it
        log.warning("cannot refresh the index of %s: %s", storage.display(name), error)


@dataclass(frozen=True)
class PublishOutcome:
    """A published version and what the promotion gate did with each requested alias.

    Attributes:
        resolved: the new version.
        promotions: one result per alias, in the order asked (``moved`` False: refused).
    """

    resolved: Resolved
    promotions: tuple[PromotionResult, ...] = ()
    registry: str = ""
    """The registry's absolute location (folder or URL)."""

    @property
    def ref(self) -> str:
        """``name@version``."""
        return self.resolved.ref

    @property
    def sha256(self) -> str:
        """Content sha256 of the projections."""
        return self.resolved.sha256

    @property
    def refused(self) -> list[PromotionResult]:
        """The aliases the gate left where they were."""
        return [p for p in self.promotions if not p.moved]

    def to_dict(self) -> dict[str, Any]:
        """The resolved version's JSON plus ``promotions``."""
        return {
            **self.resolved.to_dict(),
            "registry": self.registry,
            "promotions": [p.to_dict() for p in self.promotions],
        }


def publish_run(
    fit_dir: str,
    *,
    name: str | None = None,
    registry: str | None = None,
    aliases: tuple[str, ...] = (),
    config_path: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    recipe: EditRecipe | None = None,
    evaluation: EvaluationRecord | None = None,
) -> PublishOutcome:
    """Publish with settings from arguments, falling back to a YAML config's ``publish`` section.

    The CLI and ``jobs/publish.py`` share this. With ``config_path``, the whole resolved config
    is recorded in the manifest; explicit arguments win over the config. The recipe and the
    evaluation record are the explicit objects when given, else the fit output's
    ``recipe.json`` / ``evaluation.json``. Each alias then moves through the promotion gate
    (gated aliases: the config's ``publish.gated_aliases``); a refusal leaves the version
    published and the alias where it was, and is reported in the outcome, not raised.
    """
    from sea_dist.artifacts.registry import Registry
    from sea_dist.config import PublishConfig, config_to_dict, load_config
    from sea_dist.outputs import anchored

    full: dict[str, Any] | None = None
    publish_config = PublishConfig()
    if config_path:
        loaded = load_config(config_path)
        publish_config = loaded.publish
        full = config_to_dict(loaded)
    chosen = PublishConfig(
        registry=registry or publish_config.registry,
        name=name or publish_config.name,
        aliases=tuple(aliases) or publish_config.aliases,
        gated_aliases=publish_config.gated_aliases,
    )
    if full is not None:
        full["publish"] = config_to_dict(chosen)
    else:
        full = {"publish": config_to_dict(chosen)}
    for alias in chosen.aliases:  # refuse a bad alias before anything is published
        check_alias(alias)
    # A relative registry resolves against $SEA_DIST_OUTPUT_BASE, never into a Ray job's
    # temporary working-directory copy.
    target = Registry(
        anchored(chosen.registry, "publish.registry"),
        storage_options=storage_options,
    )
    resolved = target.publish(
        fit_dir, chosen.name, config=full, recipe=recipe, evaluation=evaluation
    )
    promotions = tuple(
        target.promote(chosen.name, resolved.version, alias, gated_aliases=chosen.gated_aliases)
        for alias in chosen.aliases
    )
    return PublishOutcome(resolved, promotions, target.url)
