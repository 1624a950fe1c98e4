"""Summary, report and plots of ``sea-dist tune`` (:mod:`sea_dist.studies.tune`).

``tune.json`` holds every number; ``tune.md`` the protocol, the choice, the test-fold table of the
chosen setting and each preset, damage next to effect, greedy generations, and a last line that a
benchmark reader can parse::

    RESULT tuned_mc2_margin=... tuned_mc2_margin_lo=... tuned_mc1_delta=... tuned_ppl_ratio=...
    paper_mc2_margin=... paper_mc2_margin_lo=... paper_ppl_ratio=...

(margins: SEA minus its best control on the test fold; ``_lo``: lower end of the 95% interval.)
``tune_pareto.png`` plots every setting tried: validation margin against perplexity ratio, with
the budget as a line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sea_dist.format.files import EVALUATION_FILE, RECIPE_FILE
from sea_dist.format.recipe import EvaluationRecord
from sea_dist.studies.space import Setting

log = logging.getLogger(__name__)


def _setting_json(setting: Setting) -> dict[str, Any]:
    return {"name": setting.name, "description": setting.description, **setting.axes()}


def evaluation_record(
    result: Mapping[str, Any], budget: Any, fingerprints: Mapping[str, str]
) -> EvaluationRecord:
    """The test-fold evaluation of one setting as the record an artifact carries."""
    margin = result.get("margin_ci") or [None, None, None]
    return EvaluationRecord(
        effect="truthfulqa_mc2_margin",
        metrics={
            "effect": margin[0],
            "effect_lo": margin[1],
            "effect_hi": margin[2],
            "perplexity_ratio": result.get("perplexity_ratio"),
            "builtin_accuracy_delta": result.get("builtin_accuracy_delta"),
            "logprob_per_token_delta": result.get("logprob_per_token_delta"),
            "generation_delta": result.get("generation_delta"),
            "mc1_delta": result.get("delta_mc1"),
            "mc2_delta": result.get("delta_mc2"),
            "n_questions": float(result.get("n_questions", 0)),
        },
        budget=budget,
        data_fingerprints=dict(fingerprints),
        source="tune",
    )


def summarise(
    *,
    tune: Any,
    chosen: Setting | None,
    trials: list[dict[str, Any]],
    tested: Mapping[str, dict[str, Any]],
    generations: Mapping[str, Any],
    minutes: float,
) -> dict[str, Any]:
    """Everything the report shows, JSON-ready (``tune.json``)."""
    options = tune.options
    budget = options.budget
    rows = []
    for record in trials:
        row = {k: v for k, v in record.items() if k != "setting"}
        row["setting"] = _setting_json(record["setting"])
        rows.append(row)
    fingerprints = {"tune_cache": tune.scorer.cache.folder.name if tune.scorer else ""}
    test_rows = {}
    for name, result in tested.items():
        evaluation = evaluation_record(result, budget, fingerprints)
        test_rows[name] = {**result, "evaluation": evaluation.to_dict()}
    chosen_recipe = None
    if chosen is not None:
        scale = tested[chosen.name]["feature_map"]["scale"]
        chosen_recipe = chosen.recipe(scale).to_dict()
    return {
        "model": {
            "id": tune.loaded.model_id,
            "revision": tune.loaded.revision,
            "n_layers": tune.info.n_layers,
            "d_model": tune.info.d_model,
            "device": str(getattr(tune.loaded, "device", "")),
        },
        "protocol": {
            "dev": options.dev,
            "test": options.test,
            "fit_questions": len(tune.fit_items),
            "validation_questions": len(tune.validation.items),
            "test_questions": len(tune.test.items),
            "seeds": options.seeds,
            "eta": options.eta,
            "chunk_questions": options.chunk_questions,
            "finalists": options.finalists,
            "budget": budget.to_dict(),
            "budget_minutes": options.budget_minutes,
            "restart": options.restart,
        },
        "minutes": minutes,
        "trials": rows,
        "chosen": None if chosen is None else chosen.name,
        "chosen_recipe": chosen_recipe,
        "presets": list(options.presets),
        "test": test_rows,
        "generations": dict(generations),
        "result": result_line(chosen, tested, options.presets),
    }


def _num(value: Any) -> str:
    return "nan" if value is None else f"{float(value):.4f}"


def result_line(
    chosen: Setting | None, tested: Mapping[str, Mapping[str, Any]], presets: Any
) -> str:
    """The parsable ``RESULT ...`` line (``nan`` where a value does not exist)."""
    tuned = tested.get(chosen.name) if chosen is not None else None
    paper = tested.get("paper-truthfulqa") if "paper-truthfulqa" in presets else None
    fields = []
    for prefix, row in (("tuned", tuned), ("paper", paper)):
        margin = (row or {}).get("margin_ci") or [None, None, None]
        fields.append(f"{prefix}_mc2_margin={_num(margin[0])}")
        fields.append(f"{prefix}_mc2_margin_lo={_num(margin[1])}")
        if prefix == "tuned":
            fields.append(f"tuned_mc1_delta={_num((row or {}).get('delta_mc1'))}")
        fields.append(f"{prefix}_ppl_ratio={_num((row or {}).get('perplexity_ratio'))}")
    return "RESULT " + " ".join(fields)


def _ci(values: Any) -> str:
    if not values:
        return ""
    mean, low, high = values
    mark = "*" if low > 0 or high < 0 else ""
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]{mark}"


def _markdown(summary: Mapping[str, Any]) -> str:
    protocol = summary["protocol"]
    budget = protocol["budget"]
    lines = [
        "# sea-dist tune",
        "",
        f"Model `{summary['model']['id']}` ({summary['model']['n_layers']} layers, "
        f"d = {summary['model']['d_model']}), {summary['minutes']:.1f} min.",
        "",
        "## Protocol",
        "",
        f"- Dev fold `{protocol['dev']}`: {protocol['fit_questions']} questions fit SEA "
        f"(positive = best answer, negative = an incorrect one), {protocol['validation_questions']}"
        " validation questions choose the setting. The test fold "
        f"`{protocol['test']}` ({protocol['test_questions']} questions) is scored once, after "
        "the choice.",
        f"- Objective: validation MC2 margin of SEA over its best control (roles swapped; random "
        f"subspaces with the same k, {protocol['seeds']} seeds averaged).",
        f"- Damage budget: held-out perplexity ratio <= {budget['max_perplexity_ratio']}, "
        f"built-in accuracy >= unedited - {budget['max_builtin_accuracy_drop']}, log p change "
        f"per answer token >= {budget['min_logprob_per_token_delta']} nats, greedy built-in "
        f"answers containing the truth >= unedited - {budget['max_generation_drop']}.",
        f"- Search: successive halving (eta {protocol['eta']}, chunks of "
        f"{protocol['chunk_questions']} questions); the best {protocol['finalists']} inside the "
        "cheap checks get the full check.",
        "",
        "## Choice",
        "",
    ]
    chosen = summary["chosen"]
    if chosen is None:
        lines.append(
            "**No setting of the space stays inside the damage budget** on validation; nothing "
            "is recommended. The test-fold table below shows the presets only."
        )
    else:
        trial = next(t for t in summary["trials"] if t["setting"]["name"] == chosen)
        lines.append(
            f"Chosen on validation: **{chosen}** ({json.dumps(summary['chosen_recipe'])}); "
            f"validation margin {_ci(trial.get('margin_ci'))} over {trial['n_questions']} "
            "questions."
        )
    lines += ["", "## Test fold", ""]
    lines += [
        "| setting | MC1 | MC2 | ΔMC1 vs unedited | ΔMC2 vs unedited | SEA − best control | "
        "SEA − random | SEA − swapped | first token unedited: ΔMC2 | perplexity (ratio) | "
        "built-in acc (Δ) | Δ log p / answer token | answer rate (Δ) | gate |",
        "| --- | ---: | ---: | --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: "
        "| --- |",
    ]
    first = next(iter(summary["test"].values()), None)
    if first is not None:
        lines.append(
            f"| unedited | {first['unedited_mc1']:.3f} | {first['unedited_mc2']:.3f} | | | | | | "
            f"| {first['perplexity'] / first['perplexity_ratio']:.1f} | "
            f"{first['builtin_accuracy'] - first['builtin_accuracy_delta']:.3f} | | "
            f"{first['answer_rate'] - first['generation_delta']:.3f} | |"
        )
    for name, row in summary["test"].items():
        label = f"**{name}** (chosen)" if name == chosen else name
        skip = row.get("skip_first", {})
        verdict = "pass" if row["evaluation"]["passed"] else "fail"
        lines.append(
            f"| {label} | {row['mc1']:.3f} | {row['mc2']:.3f} | {_ci(row.get('delta_mc1_ci'))} | "
            f"{_ci(row.get('delta_mc2_ci'))} | {_ci(row.get('margin_ci'))} ({row['best_control']})"
            f" | {_ci(row.get('vs_random_ci'))} | {_ci(row.get('vs_swapped_ci'))} | "
            f"{_ci(skip.get('delta_mc2_ci'))} | {row['perplexity']:,.1f} "
            f"({row['perplexity_ratio']:.3f}) | {row['builtin_accuracy']:.3f} "
            f"({row['builtin_accuracy_delta']:+.3f}) | {row['logprob_per_token_delta']:+.3f} | "
            f"{row['answer_rate']:.3f} ({row['generation_delta']:+.3f}) | {verdict} |"
        )
    lines += [
        "",
        "Intervals: paired bootstrap 95% over test questions; `*` = excludes 0. Gate: the "
        "promotion gate's verdict on this row (inside the budget and SEA − best control "
        "interval above 0).",
        "",
    ]
    for name, row in summary["test"].items():
        reasons = row["evaluation"]["reasons"]
        if reasons:
            lines.append(f"- {name}: gate fails: {'; '.join(reasons)}")
    lines += ["", "## Every setting tried (validation)", ""]
    lines += [
        "| setting | round | questions | MC2 | margin | best control | ΔMC2 | ppl ratio | "
        "Δ log p / token | budget |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for t in sorted(summary["trials"], key=lambda t: (-t["round"], -t["margin"])):
        status = "; ".join(t["budget_failures"]) or "inside"
        lines.append(
            f"| {t['setting']['name']} | {t['round']} | {t['n_questions']} | {t['mc2']:.3f} | "
            f"{t['margin']:+.4f} | {t['best_control']} | {t['delta_mc2']:+.3f} | "
            f"{t['perplexity_ratio']:.3f} | {t['logprob_per_token_delta']:+.3f} | {status} |"
        )
    generations = summary["generations"]
    lines += ["", "## Greedy generations (test prompts)", ""]
    lines += ["| question | unedited | edited (chosen) |", "| --- | --- | --- |"]
    edited = generations.get("edited") or [""] * len(generations["prompts"])
    for q, a, b in zip(generations["prompts"], generations["unedited"], edited):
        cells = [str(x).replace("|", "\\|").replace("\n", " ") for x in (q, a, b)]
        lines.append(f"| {cells[0]} | {cells[1]} | {cells[2]} |")
    lines += ["", "![Pareto](tune_pareto.png)", "", summary["result"], ""]
    return "\n".join(lines)


def _pareto(summary: Mapping[str, Any], out: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib missing: no Pareto plot")
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5))
    trials = summary["trials"]
    for t in trials:
        inside = not t["budget_failures"]
        ax.scatter(
            max(t["perplexity_ratio"], 1e-3),
            t["margin"],
            c="tab:blue" if inside else "tab:gray",
            s=18 + 8 * t["round"],
            marker="o" if t["setting"]["site"] == "residual" else "s",
            alpha=0.8,
        )
        if t.get("chosen"):
            ax.annotate(t["setting"]["name"], (t["perplexity_ratio"], t["margin"]), fontsize=7)
    ax.axvline(
        summary["protocol"]["budget"]["max_perplexity_ratio"],
        color="tab:red",
        ls="--",
        label="perplexity budget",
    )
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("held-out perplexity ratio (edited / unedited, log)")
    ax.set_ylabel("validation MC2 margin over best control")
    ax.set_title("every setting tried (blue: inside the measured budget; square: not residual)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path = out / "tune_pareto.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def write_tune_report(summary: Mapping[str, Any], out: Path) -> Path:
    """Write ``tune.json``, ``tune.md``, ``tune_pareto.png`` and ``recipe.json`` (the choice)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _pareto(summary, out)
    path = out / "tune.md"
    path.write_text(_markdown(summary), encoding="utf-8")
    if summary["chosen_recipe"] is not None:
        (out / RECIPE_FILE).write_text(json.dumps(summary["chosen_recipe"], indent=2) + "\n")
        evaluation = summary["test"][summary["chosen"]]["evaluation"]
        (out / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
    return path
