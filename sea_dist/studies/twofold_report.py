"""Summary, Markdown report and plots of the two-fold study (:mod:`sea_dist.studies.twofold`).

All comparisons are paired over the same questions with bootstrap 95% intervals. A setting's
*margin* is the smaller of its MC2 gains over the two controls (random subspaces with the same k,
roles swapped); the recommended setting is the one with the largest margin, not the best raw MC2,
because on a small model almost any projection moves MC2 toward the share of true answers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sea_dist.evaluate.stats import (
    PairedDifference,
    length_only_scores,
    mean_logprob_change_per_token,
    paired_bootstrap,
    uniform_shift_scores,
)
from sea_dist.evaluate.truthfulqa import AnswerLayout, mc_from_logprobs

log = logging.getLogger(__name__)


def _ci(diff: PairedDifference) -> dict[str, float]:
    return {"mean": diff.mean, "low": diff.low, "high": diff.high}


def k_table(fit: Any, setting: Any) -> dict[str, list[int]]:
    """``{"layer": [...], "k_pos": [...], "k_neg": [...]}``: every fitted layer's k+ and k- at
    the setting's K+ and K- (a :class:`~sea_dist.studies.fits.StudyFit` keeps full spectra)."""
    ranks = fit.ranks(setting.positive_energy, setting.negative_energy)
    order = sorted(ranks)
    return {
        "layer": order,
        "k_pos": [ranks[layer][0] for layer in order],
        "k_neg": [ranks[layer][1] for layer in order],
    }


def _shared(values: Sequence[float]) -> float | list[float]:
    """The one value every setting uses, else the distinct values in order."""
    distinct = list(dict.fromkeys(values))
    return distinct[0] if len(distinct) == 1 else distinct


def _fmt(ci: Mapping[str, float], digits: int = 3) -> str:
    mark = "*" if ci["low"] > 0 or ci["high"] < 0 else ""
    return f"{ci['mean']:+.{digits}f} [{ci['low']:+.{digits}f}, {ci['high']:+.{digits}f}]{mark}"


def summarise(
    *,
    config: Any,
    loaded: Any,
    options: Any,
    data: Any,
    unedited: Any,
    scores: Mapping[str, Any],
    fits: Mapping[str, Sequence[Any]],
    generated: Mapping[tuple[str, int], list[str]],
) -> dict[str, Any]:
    """The study's numbers as a JSON-ready dict (``twofold.json``)."""
    layout = AnswerLayout(
        np.concatenate([lay.n_true for lay in data.layouts]),
        np.concatenate([lay.n_false for lay in data.layouts]),
    )
    n_tokens = np.concatenate([pairs.n_tokens for pairs in data.test_pairs])
    base = mc_from_logprobs(unedited.logprob, layout)
    length = length_only_scores(n_tokens, layout)
    resamples = options.resamples

    def boot(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        return _ci(paired_bootstrap(a, b, resamples=resamples))

    def mc(logprob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return mc_from_logprobs(logprob, layout)

    rows = []
    for setting in options.settings:
        sea = scores[setting.name]
        mc1, mc2 = mc(sea.logprob)
        randoms = [mc(scores[f"{setting.name}~random{s}"].logprob) for s in range(options.seeds)]
        rnd1 = np.mean([r[0] for r in randoms], axis=0)
        rnd2 = np.mean([r[1] for r in randoms], axis=0)
        swapped = scores[f"{setting.name}~swapped"]
        swp1, swp2 = mc(swapped.logprob)
        shift = mean_logprob_change_per_token(sea.logprob, unedited.logprob, n_tokens)
        shift1, shift2 = uniform_shift_scores(unedited.logprob, n_tokens, shift, layout)
        control_shift = {
            "random": float(
                np.mean(
                    [
                        mean_logprob_change_per_token(
                            scores[f"{setting.name}~random{s}"].logprob,
                            unedited.logprob,
                            n_tokens,
                        )
                        for s in range(options.seeds)
                    ]
                )
            ),
            "swapped": mean_logprob_change_per_token(swapped.logprob, unedited.logprob, n_tokens),
        }
        vs = {
            "unedited": {"mc1": boot(mc1, base[0]), "mc2": boot(mc2, base[1])},
            "random": {"mc1": boot(mc1, rnd1), "mc2": boot(mc2, rnd2)},
            "swapped": {"mc1": boot(mc1, swp1), "mc2": boot(mc2, swp2)},
            "uniform_shift": {"mc1": boot(mc1, shift1), "mc2": boot(mc2, shift2)},
        }
        k_tables = [k_table(fit, setting) for fit in fits[setting.name]]
        rows.append(
            {
                "name": setting.name,
                "setting": {**setting.axes(), "description": setting.description},
                "mc1": float(mc1.mean()),
                "mc2": float(mc2.mean()),
                "controls": {
                    "random": {"mc1": float(rnd1.mean()), "mc2": float(rnd2.mean())},
                    "swapped": {"mc1": float(swp1.mean()), "mc2": float(swp2.mean())},
                    "uniform_shift": {"mc1": float(shift1.mean()), "mc2": float(shift2.mean())},
                },
                "vs": vs,
                "margin_mc2": min(vs["random"]["mc2"]["mean"], vs["swapped"]["mc2"]["mean"]),
                "logprob_change_per_token": shift,
                "control_logprob_change_per_token": control_shift,
                "perplexity": float(np.mean(sea.perplexity)),
                "builtin_accuracy": float(np.mean(sea.builtin_accuracy)),
                "k": {"fold1": k_tables[0], "fold2": k_tables[1]},
                "mean_k_pos": float(np.mean([t["k_pos"] for t in k_tables])),
                "mean_k_neg": float(np.mean([t["k_neg"] for t in k_tables])),
                "feature_map_scale": fits[setting.name][0].feature_map.scale,
            }
        )
    best = max(rows, key=lambda row: row["margin_mc2"])["name"]
    return {
        "model": {"id": loaded.model_id, "revision": loaded.revision},
        "device": str(next(loaded.model.parameters()).device),
        "n_questions": int(len(layout.n_true)),
        "folds": [len(lay.n_true) for lay in data.layouts],
        "limit_per_fold": options.limit,
        "seeds": options.seeds,
        "resamples": resamples,
        "collect": {
            "neutral": config.collect.neutral,
            "max_new_tokens": config.collect.max_new_tokens,
            "token": config.collect.token,
        },
        "fit": {
            "K+": _shared([s.positive_energy for s in options.settings]),
            "K-": _shared([s.negative_energy for s in options.settings]),
        },
        "template": config.data.template,
        "unedited": {
            "mc1": float(base[0].mean()),
            "mc2": float(base[1].mean()),
            "perplexity": float(np.mean(unedited.perplexity)),
            "builtin_accuracy": float(np.mean(unedited.builtin_accuracy)),
        },
        "length_only": {"mc1": float(length[0].mean()), "mc2": float(length[1].mean())},
        "true_answer_share": float(np.mean(layout.n_true / (layout.n_true + layout.n_false))),
        "settings": rows,
        "best": best,
        "generated_examples": generated.get(("tqa", 0), [])[:5],
    }


def _settings_table(summary: Mapping[str, Any]) -> list[str]:
    base = summary["unedited"]
    lines = [
        "| setting | MC1 | MC2 | ΔMC2 vs unedited | ΔMC2 vs random | ΔMC2 vs swapped "
        "| margin | Δ log p / token | perplexity | builtin acc | mean k+ / k- |",
        "| --- | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
        f"| unedited | {base['mc1']:.3f} | {base['mc2']:.3f} | | | | | | "
        f"{base['perplexity']:.2f} | {base['builtin_accuracy']:.3f} | |",
    ]
    for row in summary["settings"]:
        vs = row["vs"]
        lines.append(
            f"| {row['name']} | {row['mc1']:.3f} | {row['mc2']:.3f} "
            f"| {_fmt(vs['unedited']['mc2'])} | {_fmt(vs['random']['mc2'])} "
            f"| {_fmt(vs['swapped']['mc2'])} | {row['margin_mc2']:+.3f} "
            f"| {row['logprob_change_per_token']:+.3f} | {row['perplexity']:.2f} "
            f"| {row['builtin_accuracy']:.3f} | {row['mean_k_pos']:.1f} / {row['mean_k_neg']:.1f} |"
        )
    return lines


def _controls_table(summary: Mapping[str, Any]) -> list[str]:
    lines = [
        "| setting | ΔMC1 vs unedited | ΔMC1 vs random | ΔMC1 vs swapped | random MC2 "
        "| swapped MC2 | random / swapped Δ log p / token | uniform-shift MC2 | MC2 vs shift |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in summary["settings"]:
        vs, controls = row["vs"], row["controls"]
        shift = row["control_logprob_change_per_token"]
        lines.append(
            f"| {row['name']} | {_fmt(vs['unedited']['mc1'])} | {_fmt(vs['random']['mc1'])} "
            f"| {_fmt(vs['swapped']['mc1'])} | {controls['random']['mc2']:.3f} "
            f"| {controls['swapped']['mc2']:.3f} "
            f"| {shift['random']:+.3f} / {shift['swapped']:+.3f} "
            f"| {controls['uniform_shift']['mc2']:.3f} | {_fmt(vs['uniform_shift']['mc2'])} |"
        )
    return lines


def _fit_label(summary: Mapping[str, Any], setting: Mapping[str, Any]) -> str:
    """What decides a setting's k: site, centring, feature map, and K when settings differ."""
    label = f"{setting['site']} {'centred' if setting['centre'] else 'uncentred'}"
    if setting["feature_map"] != "linear":
        label += f" {setting['feature_map']}"
    if not all(isinstance(summary["fit"][key], float | int) for key in ("K+", "K-")):
        label += f" K={setting['positive_energy']:g}/{setting['negative_energy']:g}"
    return label


def _k_table(summary: Mapping[str, Any]) -> list[str]:
    seen: dict[str, Mapping[str, list[int]]] = {}
    for row in summary["settings"]:
        seen.setdefault(_fit_label(summary, row["setting"]), row["k"]["fold1"])
    if not seen:
        return []
    layers = next(iter(seen.values()))["layer"]
    header = "| layer | " + " | ".join(f"{key} k+/k-" for key in seen) + " |"
    lines = [header, "| ---: | " + " | ".join("---:" for _ in seen) + " |"]
    for i, layer in enumerate(layers):
        cells = [f"{table['k_pos'][i]}/{table['k_neg'][i]}" for table in seen.values()]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return lines


def _bbq_lines(bbq: Mapping[str, Any]) -> list[str]:
    lines = [
        f"## BBQ two-fold ({bbq['n']} rows, setting `{bbq['setting']}`)",
        "",
        "| model | accuracy | Δ vs unedited | SEA minus this |",
        "| --- | ---: | --- | --- |",
        f"| unedited | {bbq['unedited']:.3f} | | {_fmt(bbq['vs']['unedited'])} |",
        f"| SEA | {bbq['sea']:.3f} | {_fmt(bbq['vs']['unedited'])} | |",
        f"| random (mean of seeds) | {bbq['random']:.3f} | | {_fmt(bbq['vs']['random'])} |",
        f"| swapped | {bbq['swapped']:.3f} | | {_fmt(bbq['vs']['swapped'])} |",
        "",
    ]
    return lines


def _plots(summary: Mapping[str, Any], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are a convenience; the tables carry the numbers
        log.warning("matplotlib missing: no plots")
        return []
    rows = summary["settings"]
    names = [row["name"] for row in rows]
    x = np.arange(len(rows))
    base = summary["unedited"]["mc2"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.2))
    for offset, (label, key) in zip(
        (-0.27, 0.0, 0.27), (("SEA", None), ("random", "random"), ("swapped", "swapped"))
    ):
        if key is None:
            values = [row["vs"]["unedited"]["mc2"] for row in rows]
        else:  # the controls' own change; the table carries their intervals against SEA
            values = [{"mean": row["controls"][key]["mc2"] - base} for row in rows]
        means = np.array([v["mean"] for v in values])
        errors = None
        if key is None:
            errors = np.array(
                [[v["mean"] - v["low"] for v in values], [v["high"] - v["mean"] for v in values]]
            )
        ax.bar(x + offset, means, width=0.26, label=label, yerr=errors, capsize=3)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, names, rotation=35, ha="right")
    ax.set_ylabel("MC2 change vs unedited")
    ax.set_title(f"Two-fold TruthfulQA (n={summary['n_questions']}), 95% CI on SEA")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "twofold_mc2.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    plotted: set[str] = set()
    for row in rows:
        label = _fit_label(summary, row["setting"])
        if label in plotted:
            continue
        plotted.add(label)
        table = row["k"]["fold1"]
        ax.plot(table["layer"], table["k_pos"], marker="o", markersize=3, label=f"{label} k+")
    ax.set_xlabel("layer")
    ax.set_ylabel("k+ (fold 1 fit)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "twofold_k.png", dpi=120)
    plt.close(fig)
    return ["twofold_mc2.png", "twofold_k.png"]


def _k_text(fit: Mapping[str, Any]) -> str:
    if all(isinstance(fit[key], float | int) for key in ("K+", "K-")):
        return f"K+ = {fit['K+']}, K- = {fit['K-']}"
    return "K+ / K- per setting (each setting's positive_energy / negative_energy in twofold.json)"


def write_twofold_report(summary: Mapping[str, Any], out: Path) -> Path:
    """Write ``twofold.json``, ``twofold.md`` and the plots into ``out``; return the .md path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "twofold.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    plots = _plots(summary, out)
    best = next(row for row in summary["settings"] if row["name"] == summary["best"])
    lines = [
        "# Two-fold TruthfulQA study",
        "",
        f"Model `{summary['model']['id']}` ({summary['model']['revision']}) on "
        f"{summary['device']}; {summary['n_questions']} questions (folds "
        f"{summary['folds'][0]} + {summary['folds'][1]}); neutral = "
        f"`{summary['collect']['neutral']}` (max {summary['collect']['max_new_tokens']} "
        f"new tokens); {_k_text(summary['fit'])}; "
        f"{summary['seeds']} random-control seeds; 95% paired bootstrap intervals over "
        f"questions ({summary['resamples']} resamples); `*` = interval excludes 0.",
        "",
        f"Share of true answers among all answers (where MC2 drifts under any edit): "
        f"{summary['true_answer_share']:.3f}. Answer length only (shortest answer wins): "
        f"MC1 {summary['length_only']['mc1']:.3f}, MC2 {summary['length_only']['mc2']:.3f}.",
        "",
        *_settings_table(summary),
        "",
        f"Best margin over the controls: **{best['name']}** ({best['margin_mc2']:+.3f} MC2).",
        "",
        "## MC1, controls and the damage check",
        "",
        "Δ log p / token is the mean change of the answer tokens' log-probability (nats) under "
        "the edit. The uniform-shift baseline moves every unedited answer score by that amount "
        "per token: what a pure length effect of the same size would do to MC2.",
        "",
        *_controls_table(summary),
        "",
        "## k per layer (fold 1 fit)",
        "",
        *_k_table(summary),
        "",
    ]
    if "bbq" in summary:
        lines += _bbq_lines(summary["bbq"])
    if summary.get("generated_examples"):
        lines += ["## Neutral generations (first fold-1 demonstrations)", ""]
        lines += [f"- `{text.strip()[:120]}`" for text in summary["generated_examples"]]
        lines.append("")
    lines += [f"![{name}]({name})" for name in plots]
    path = out / "twofold.md"
    path.write_text("\n".join(lines) + "\n")
    return path
