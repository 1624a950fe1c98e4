"""The promotion gate on a real local registry, through the Python API and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sea_dist.cli import main
from sea_dist.errors import ArtifactError, RegistryError
from sea_dist.format.anchors import manifest_digest, marker_bytes
from sea_dist.format.recipe import EditRecipe
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.gate import promote

FitFactory = Callable[..., Path]
RecordFactory = Callable[..., Any]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _evaluated_fit(make_fit: FitFactory, record: Any, seed: int, **recipe: Any) -> Path:
    folder = make_fit(seed=seed)
    (folder / "evaluation.json").write_text(json.dumps(record.to_dict()))
    if recipe:
        (folder / "recipe.json").write_text(json.dumps(EditRecipe(**recipe).to_dict()))
    return folder


def test_gate_refuses_a_failing_and_an_unevaluated_version(
    registry: Registry, make_fit: FitFactory, make_record: RecordFactory
) -> None:
    registry.publish(make_fit(seed=0), "g")  # unevaluated
    failing = make_record(perplexity_ratio=1.8)
    registry.publish(_evaluated_fit(make_fit, failing, 1), "g")

    unevaluated = promote(registry, "g", 1, "production")
    assert not unevaluated.moved and unevaluated.gated
    assert unevaluated.reasons[0].startswith("no evaluation record")
    refused = promote(registry, "g", 2, "production")
    assert not refused.moved
    assert refused.reasons == ("perplexity_ratio 1.8 outside the budget (<= 1.05)",)
    assert refused.line() == (
        "gate: production not moved to g@2: perplexity_ratio 1.8 outside the budget (<= 1.05)"
    )
    assert registry.aliases("g") == {}
    assert registry.alias_history("g", "production") == []  # a refusal writes nothing


def test_passing_version_moves_and_worse_one_is_refused(
    registry: Registry, make_fit: FitFactory, make_record: RecordFactory
) -> None:
    registry.publish(_evaluated_fit(make_fit, make_record(effect=0.05), 0), "g")
    registry.publish(_evaluated_fit(make_fit, make_record(effect=0.03), 1), "g")
    registry.publish(_evaluated_fit(make_fit, make_record(effect=0.08), 2), "g")

    moved = promote(registry, "g", 1, "prod")
    assert moved.moved and moved.verdict is not None and moved.verdict.passed
    assert moved.line() == "g@prod -> g@1; gate passed"
    worse = promote(registry, "g", 2, "prod")  # passes alone, but below what prod holds
    assert not worse.moved and len(worse.reasons) == 1
    assert "+0.0300 is below the current version's +0.0500 (g@1, held by prod)" in worse.reasons[0]
    better = promote(registry, "g", 3, "prod")
    assert better.moved and better.previous == 1
    assert registry.resolve("g@prod").version == 3
    history = registry.alias_history("g", "prod")
    assert [(h["version"], h["gated"], h["gate"], h["forced"]) for h in history] == [
        (1, True, {"passed": True, "reasons": []}, False),
        (3, True, {"passed": True, "reasons": []}, False),
    ]


def test_forced_promotion_is_recorded_and_needs_a_reason(
    registry: Registry, make_fit: FitFactory, make_record: RecordFactory
) -> None:
    registry.publish(make_fit(seed=0), "g")
    with pytest.raises(RegistryError, match="--reason"):
        promote(registry, "g", 1, "production", force=True)
    with pytest.raises(RegistryError, match="--reason"):
        promote(registry, "g", 1, "production", force=True, reason="   ")
    assert registry.aliases("g") == {}

    forced = promote(registry, "g", 1, "production", force=True, reason="hotfix, INC-42")
    assert forced.moved and forced.forced
    (record,) = registry.alias_history("g", "production")
    assert record["forced"] is True and record["reason"] == "hotfix, INC-42"
    assert record["gated"] is True and record["gate"]["passed"] is False
    assert record["gate"]["reasons"][0].startswith("no evaluation record")


def test_ungated_aliases_move_as_before_and_gated_ones_stay_gated(
    registry: Registry, make_fit: FitFactory
) -> None:
    registry.publish(make_fit(seed=0), "g")
    registry.publish(make_fit(seed=1), "g")
    nightly = promote(registry, "g", 1, "nightly")
    assert nightly.moved and not nightly.gated and nightly.verdict is None
    assert registry.alias_history("g", "nightly")[0]["gate"] is None

    # --gated gates an alias that is not configured as gated; it stays gated afterwards.
    assert not promote(registry, "g", 2, "canary", gated=True).moved
    promote(registry, "g", 2, "canary", gated=True, force=True, reason="first canary")
    assert not promote(registry, "g", 1, "canary").moved
    # The configured set replaces the default one.
    assert promote(registry, "g", 2, "production", gated_aliases=("live",)).moved
    assert not promote(registry, "g", 1, "live", gated_aliases=("live",)).moved


def test_publish_aliases_go_through_the_gate(
    registry: Registry, make_fit: FitFactory, make_record: RecordFactory
) -> None:
    registry.publish(make_fit(seed=0), "p", aliases=["production", "nightly"])
    assert registry.aliases("p") == {"nightly": 1}  # the version is published, prod left unset
    registry.publish(
        make_fit(seed=1), "p", aliases=["production"], evaluation=make_record(), recipe=None
    )
    assert registry.aliases("p") == {"nightly": 1, "production": 2}


def test_publish_copies_recipe_and_evaluation_files(
    registry: Registry, make_fit: FitFactory, make_record: RecordFactory
) -> None:
    folder = _evaluated_fit(make_fit, make_record(), 0, layers="last-1", alpha=0.5, name="t")
    registry.publish(folder, "r")
    manifest = registry.manifest("r@1")
    assert manifest.edit_recipe() == EditRecipe(layers="last-1", alpha=0.5, name="t")
    record = manifest.evaluation_record()
    assert record is not None and record.passed and record.metrics["effect"] == 0.05
    # The recipe reaches the edit loader through the manifest.
    assert (
        registry.load("r@1").manifest.recipe
        == EditRecipe(layers="last-1", alpha=0.5, name="t").to_dict()
    )

    # Explicit objects win over the files.
    explicit = EditRecipe(layers=(1,), positions="skip-first")
    registry.publish(folder, "r", recipe=explicit, evaluation=make_record(effect=0.2))
    manifest = registry.manifest("r@2")
    assert manifest.edit_recipe() == explicit
    assert manifest.evaluation is not None and manifest.evaluation["metrics"]["effect"] == 0.2
    rows = {r["version"]: (r["gate"], r["effect"]) for r in registry.versions("r")}
    assert rows == {1: ("pass", 0.05), 2: ("pass", 0.2)}


def test_publish_refuses_an_evaluation_of_other_projections(
    registry: Registry, make_fit: FitFactory, make_record: RecordFactory
) -> None:
    record = make_record()
    stale = type(record)(
        effect=record.effect, metrics=record.metrics, data_fingerprints={"projections": "0" * 16}
    )
    with pytest.raises(ArtifactError, match="belongs to another fit"):
        registry.publish(make_fit(seed=0), "s", evaluation=stale)
    folder = make_fit(seed=1)
    (folder / "evaluation.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"evaluation\.json: expected valid JSON"):
        registry.publish(folder, "s")
    (folder / "evaluation.json").write_text(json.dumps({"effect": "x"}))
    with pytest.raises(ArtifactError, match="evaluation.json"):
        registry.publish(folder, "s")
    assert registry.names() == []


def test_manifest_without_recipe_or_evaluation_loads_and_lists(
    registry: Registry, make_fit: FitFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """A version published before recipes: its manifest has neither key (marker pins it)."""
    registry.publish(make_fit(seed=0), "old")
    root = Path(registry.storage.root) / "old"
    data = json.loads((root / "versions" / "1" / "manifest.json").read_text())
    del data["recipe"], data["evaluation"]
    raw = (json.dumps(data, indent=2) + "\n").encode()
    (root / "versions" / "1" / "manifest.json").write_bytes(raw)
    marker = json.loads((root / "complete" / "1.json").read_text())
    (root / "complete" / "1.json").write_bytes(
        marker_bytes(1, marker["sha256"], manifest_digest(raw), marker["completed_at"])
    )
    (root / "index.parquet").unlink(missing_ok=True)

    fresh = Registry(registry.url)
    manifest = fresh.manifest("old@1")
    assert manifest.recipe is None and manifest.evaluation is None
    assert fresh.load("old@1").manifest.version == 1
    assert fresh.versions("old")[0]["gate"] == "unevaluated"
    code, out, _ = run(capsys, "registry", "versions", "old", "--registry", registry.url)
    assert code == 0 and out.splitlines()[1].split()[-2:] == ["unevaluated", "latest"]
    code, out, _ = run(capsys, "registry", "show", "old@1", "--registry", registry.url)
    assert "recipe: none" in out and "\ngate: unevaluated\n" in out


def test_manifest_with_a_malformed_record_names_the_field(
    registry: Registry, make_fit: FitFactory
) -> None:
    from sea_dist.format.manifest import manifest_from_dict

    registry.publish(make_fit(seed=0), "m")
    data = registry.manifest("m@1").to_dict()
    with pytest.raises(ArtifactError, match="manifest.json: evaluation: expected"):
        manifest_from_dict({**data, "evaluation": {"metrics": {}}})
    with pytest.raises(
        ArtifactError, match=r"manifest.json: recipe: .*alpha: expected a number in \[0, 1\]"
    ):
        manifest_from_dict({**data, "recipe": {"alpha": 3}})


def test_cli_alias_gate_force_and_show(
    tmp_path: Path,
    make_fit: FitFactory,
    make_record: RecordFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reg = str(tmp_path / "reg")
    failing = _evaluated_fit(make_fit, make_record(effect_lo=-0.01), 0, alpha=0.8, name="x")
    code, out, _ = run(
        capsys,
        "publish",
        str(failing),
        "--name",
        "c",
        "--registry",
        reg,
        "--alias",
        "production",
        "--alias",
        "nightly",
    )
    assert code == 0
    assert out.splitlines()[1:] == [
        "gate: production not moved to c@1: truthfulqa_mc2_margin interval lower end -0.0100 "
        "<= 0 (does not beat its best control)",
        "c@nightly -> c@1",
    ]

    code, out, err = run(capsys, "registry", "alias", "c@1", "prod", "--registry", reg)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("sea-dist: error: gate: prod not moved to c@1: truthfulqa_mc2_margin")
    code, _, err = run(capsys, "registry", "alias", "c@1", "prod", "--force", "--registry", reg)
    assert code == 2 and "--reason" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(
        capsys,
        "registry",
        "alias",
        "c@1",
        "prod",
        "--force",
        "--reason",
        "demo day",
        "--registry",
        reg,
        "--json",
    )
    assert code == 0 and json.loads(out)["forced"] is True
    assert json.loads(out)["reason"] == "demo day"
    code, out, _ = run(capsys, "registry", "alias", "c@1", "staging", "--registry", reg, "--gated")
    assert code == 2

    code, out, _ = run(capsys, "registry", "show", "c@1", "--registry", reg)
    assert code == 0
    assert "recipe 'x': layers all, alpha 0.8, positions all" in out
    assert "\ngate: FAIL\n  - truthfulqa_mc2_margin interval lower end -0.0100" in out
    assert "perplexity_ratio: 1.0100 (budget <= 1.05)" in out
    assert "aliases: nightly, prod" in out
    code, out, _ = run(capsys, "registry", "versions", "c", "--registry", reg)
    assert out.splitlines()[1].split()[-2:] == ["fail", "latest,nightly,prod"]
    code, out, _ = run(capsys, "registry", "aliases", "c", "--history", "prod", "--registry", reg)
    assert "FORCED past the gate" in out and "demo day" in out
