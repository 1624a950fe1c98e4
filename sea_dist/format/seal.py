"""Seals on a fit output: ``fit.json`` records the sha256 of its projections and of itself.

(:func:`record_digest` also seals an activation store's attributes, ``attributes_sha256``.)

A fit output is two files written together. A byte flipped in ``projections.safetensors`` can
leave a valid float (a basis off by 1e-7 passes any orthonormality tolerance), and one flipped in
``fit.json`` can change a digit of an energy or a k: both would be published as if fine. So the
writer seals the record: ``projections_sha256`` is the sha256 of the projections file and
``record_sha256`` the sha256 of the canonical JSON of the record without that field. Readers
check both; a record without seals (written before them) is read unchecked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sea_dist.errors import ArtifactError, expected_found

PROJECTIONS_SEAL = "projections_sha256"
RECORD_SEAL = "record_sha256"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_digest(record: Mapping[str, Any], seal_key: str = RECORD_SEAL) -> str:
    """sha256 of the canonical JSON of ``record`` without its seal field ``seal_key``."""
    body = {k: v for k, v in record.items() if k != seal_key}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _sha256(canonical.encode("ascii"))


def seal(record: Mapping[str, Any], projections: bytes) -> dict[str, Any]:
    """``record`` with both seals added (the projections' sha256, then the record's own)."""
    sealed = {k: v for k, v in record.items() if k != RECORD_SEAL}
    sealed[PROJECTIONS_SEAL] = _sha256(projections)
    sealed[RECORD_SEAL] = record_digest(sealed)
    return sealed


def is_sealed(record: Mapping[str, Any]) -> bool:
    """Whether the record carries seals (fit outputs written before them do not)."""
    return PROJECTIONS_SEAL in record or RECORD_SEAL in record


def check_seal(record: Mapping[str, Any], projections: bytes, what: str) -> None:
    """Refuse a sealed record whose projections or own content changed since it was written.

    Args:
        record: the parsed ``fit.json``.
        projections: the bytes of ``projections.safetensors``.
        what: the fit output, for messages.

    Raises:
        ArtifactError: a seal is missing (only one of the two present) or does not match.
    """
    if not is_sealed(record):
        return
    fix = "the fit output was damaged after it was written: re-run 'sea-dist fit'"
    recorded = record.get(RECORD_SEAL)
    if recorded != record_digest(record):
        raise ArtifactError(
            expected_found(
                f"{what}: fit.json", f"content with sha256 {recorded}", "other content", fix
            )
        )
    announced = record.get(PROJECTIONS_SEAL)
    actual = _sha256(projections)
    if announced != actual:
        raise ArtifactError(
            expected_found(
                f"{what}: projections.safetensors",
                f"sha256 {announced} (recorded in fit.json)",
                actual,
                fix,
            )
        )
