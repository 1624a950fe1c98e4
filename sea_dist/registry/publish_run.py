"""Publishing a fit output with the settings of a run: the CLI's and the Ray job's publish.

:func:`publish_run` takes explicit arguments, falling back to a YAML config's ``publish`` section,
publishes into the registry at a folder or fsspec URL (:func:`sea_dist.registry.publish.publish`)
and moves each alias through the promotion gate, reporting (not raising) a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sea_dist.config import PublishConfig, config_to_dict, load_config
from sea_dist.format.recipe import EditRecipe, EvaluationRecord
from sea_dist.outputs import anchored
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.gate import PromotionResult, promote
from sea_dist.registry.publish import publish
from sea_dist.registry.refs import Resolved, check_alias


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
    output_base: str | None = None,
) -> PublishOutcome:
    """Publish with settings from arguments, falling back to a YAML config's ``publish`` section.

    The CLI and ``jobs/publish.py`` share this. With ``config_path``, the whole resolved config
    is recorded in the manifest; explicit arguments win over the config. The recipe and the
    evaluation record are the explicit objects when given, else the fit output's
    ``recipe.json`` / ``evaluation.json``. Each alias then moves through the promotion gate
    (gated aliases: the config's ``publish.gated_aliases``); a refusal leaves the version
    published and the alias where it was, and is reported in the outcome, not raised.
    A relative registry resolves against ``output_base`` (an absolute folder or URL; the entry
    layer passes ``$SEA_DIST_OUTPUT_BASE``), else the working directory.
    """
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
    # A relative registry resolves against the output base ($SEA_DIST_OUTPUT_BASE, passed in by
    # the entry layer), never into a Ray job's temporary working-directory copy.
    target = Registry(
        anchored(chosen.registry, "publish.registry", base=output_base),
        storage_options=storage_options,
    )
    resolved = publish(
        target, fit_dir, chosen.name, config=full, recipe=recipe, evaluation=evaluation
    )
    promotions = tuple(
        promote(target, chosen.name, resolved.version, alias, gated_aliases=chosen.gated_aliases)
        for alias in chosen.aliases
    )
    return PublishOutcome(resolved, promotions, target.url)
