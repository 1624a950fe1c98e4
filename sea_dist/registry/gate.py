"""The promotion gate: a gated alias moves only to a version whose evaluation record passes.

The rule itself lives in :mod:`sea_dist.format.recipe` (:func:`gate_failures`, :func:`worse_than`);
this module applies it to a registry. Moving a *gated* alias to ``name@v`` requires

1. ``gate_failures(record(v)) == []``: the version carries an evaluation record (manifest key
   ``evaluation``) whose damage metrics are all measured and inside its budget and whose effect
   interval lies above 0; and
2. ``worse_than(record(v), record(held))`` is None: it is not worse, on the same effect, than the
   version the alias holds now.

A refusal leaves the alias where it was and writes nothing. ``force=True`` with a ``reason``
overrides a failing verdict; the move's history record keeps the verdict, ``forced`` and the
reason (:mod:`sea_dist.registry.aliases`). ``force`` without a reason is refused.

Which aliases are gated: those in ``publish.gated_aliases`` (default ``production`` and
``prod``), any alias moved with ``gated=True`` (``--gated``), and any alias whose current pointer
says its last move was gated: once an alias is gated it stays gated, so a later plain move cannot
slip a version past the gate. Ungated aliases move as before (and their history says
``"gated": false``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sea_dist.config import PublishConfig
from sea_dist.errors import RegistryError, expected_found
from sea_dist.format.anchors import COMPLETE_DIR
from sea_dist.format.recipe import EvaluationRecord, gate_failures, worse_than
from sea_dist.registry import aliases as alias_ops
from sea_dist.registry.protocol import WritableRegistry
from sea_dist.registry.refs import check_alias, check_name, check_version

DEFAULT_GATED_ALIASES: tuple[str, ...] = PublishConfig().gated_aliases


class GateRefusedError(RegistryError):
    """The gate refused to move an alias (the CLI reports it as one line, exit 2)."""


@dataclass(frozen=True)
class GateVerdict:
    """The gate's verdict on moving an alias to one version.

    Attributes:
        passed: True when there is no reason to refuse.
        reasons: why the move is refused (empty when it passes).
    """

    passed: bool
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``{"passed": bool, "reasons": [...]}`` (as kept in the alias history)."""
        return {"passed": self.passed, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class PromotionResult:
    """What :func:`promote` did.

    Attributes:
        name: artifact name.
        version: the version the alias was to move to.
        alias: the alias.
        gated: the gate applied to this move.
        verdict: the gate's verdict (None for an ungated move).
        moved: the alias now points at ``version``.
        forced: a failing verdict was overridden.
        reason: the reason given (for a forced move: why).
        previous: the version the alias held before (None: it did not exist).
        history: the history record written (None when nothing moved).
    """

    name: str
    version: int
    alias: str
    gated: bool
    verdict: GateVerdict | None
    moved: bool
    forced: bool = False
    reason: str | None = None
    previous: int | None = None
    history: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def ref(self) -> str:
        """``name@version`` of the target."""
        return f"{self.name}@{self.version}"

    @property
    def reasons(self) -> tuple[str, ...]:
        """The verdict's reasons (empty for an ungated move)."""
        return self.verdict.reasons if self.verdict is not None else ()

    def line(self) -> str:
        """One human line: the move, or ``gate: <alias> not moved to <name@v>: <reasons>``."""
        if not self.moved:
            return f"gate: {self.alias} not moved to {self.ref}: {'; '.join(self.reasons)}"
        was = f" (was {self.name}@{self.previous})" if self.previous is not None else ""
        text = f"{self.name}@{self.alias} -> {self.ref}{was}"
        if self.forced:
            text += f"; gate overridden ({'; '.join(self.reasons)}): {self.reason}"
        elif self.gated:
            text += "; gate passed"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON data (``--json`` output, job results)."""
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "alias": self.alias,
            "moved": self.moved,
            "gated": self.gated,
            "gate": self.verdict.to_dict() if self.verdict is not None else None,
            "forced": self.forced,
            "reason": self.reason,
            "previous": self.previous,
        }


def evaluation_of(registry: WritableRegistry, name: str, version: int) -> EvaluationRecord | None:
    """The evaluation record in the manifest of ``name@version`` (None: unevaluated).

    Raises:
        NotFoundError: the version is not published.
        ArtifactError: the manifest is damaged or its record malformed.
    """
    return registry.manifest(f"{name}@{version}").evaluation_record()


def is_gated(
    registry: WritableRegistry,
    name: str,
    alias: str,
    *,
    gated: bool = False,
    gated_aliases: Sequence[str] | None = None,
) -> bool:
    """Whether moving ``alias`` of ``name`` goes through the gate (see the module doc)."""
    listed = DEFAULT_GATED_ALIASES if gated_aliases is None else tuple(gated_aliases)
    if gated or alias in listed:
        return True
    current = alias_ops.read_alias_record(registry.storage, name, alias)
    return bool(current and current.get("gated"))


def check_promotion(registry: WritableRegistry, name: str, version: int, alias: str) -> GateVerdict:
    """The gate's verdict on moving ``alias`` of ``name`` to ``version`` (nothing is written)."""
    record = evaluation_of(registry, name, version)
    reasons = gate_failures(record)
    held = alias_ops.read_alias(registry.storage, name, alias)
    if (
        held is not None
        and held != version
        and registry.storage.exists(name, COMPLETE_DIR, f"{held}.json")
    ):  # an alias left pointing to a removed version holds nothing to compare with
        worse = worse_than(record, evaluation_of(registry, name, held))
        if worse is not None:
            reasons.append(f"{worse} ({name}@{held}, held by {alias})")
    return GateVerdict(passed=not reasons, reasons=tuple(reasons))


def promote(
    registry: WritableRegistry,
    name: str,
    version: int | str,
    alias: str,
    *,
    force: bool = False,
    reason: str | None = None,
    gated: bool = False,
    gated_aliases: Sequence[str] | None = None,
) -> PromotionResult:
    """Move ``alias`` of ``name`` to ``version`` through the gate when the alias is gated.

    Args:
        registry: a writable registry.
        name: artifact name.
        version: the target version (``7`` or ``"v7"``).
        alias: the alias to move.
        force: move even when the gate refuses (needs ``reason``).
        reason: why the gate is overridden; recorded in the history either way.
        gated: gate this move even if ``alias`` is not in ``gated_aliases`` (the alias then
            stays gated).
        gated_aliases: the configured gated aliases (default ``production``, ``prod``).

    Returns:
        What happened; ``moved`` is False when the gate refused (the alias is left as it was).

    Raises:
        RegistryError: an invalid name or alias, or ``force`` without a reason.
        NotFoundError: the version is not published.
    """
    check_name(name)
    check_alias(alias)
    number = check_version(version)
    reason = " ".join(reason.split()) if reason else None
    if force and not reason:
        raise RegistryError(
            expected_found(
                f"promote {name}@{number} to {alias} with --force",
                "a --reason TEXT saying why the gate is overridden",
                "no reason",
                "add --reason",
            )
        )
    registry.resolve(f"{name}@{number}")  # NotFoundError unless the version is complete
    previous = alias_ops.read_alias(registry.storage, name, alias)
    if not is_gated(registry, name, alias, gated=gated, gated_aliases=gated_aliases):
        history = alias_ops.move_alias(
            registry.storage, name, alias, number, reason=reason, previous=previous
        )
        return PromotionResult(
            name, number, alias, False, None, True, False, reason, previous, history
        )
    verdict = check_promotion(registry, name, number, alias)
    if not verdict.passed and not force:
        return PromotionResult(name, number, alias, True, verdict, False, False, reason, previous)
    history = alias_ops.move_alias(
        registry.storage,
        name,
        alias,
        number,
        gated=True,
        gate=verdict.to_dict(),
        forced=not verdict.passed,
        reason=reason,
        previous=previous,
    )
    return PromotionResult(
        name, number, alias, True, verdict, True, not verdict.passed, reason, previous, history
    )


def require_moved(result: PromotionResult) -> PromotionResult:
    """``result`` when the alias moved, else raise :class:`GateRefusedError` with its line."""
    if not result.moved:
        raise GateRefusedError(
            f"{result.line()}; fix the version, or override with --force --reason TEXT"
        )
    return result
