"""Run report: a Markdown summary plus PNG plots, written next to the run outputs.

Plots: per-layer spectra (cumulative energy of Omega+ and Omega-) with the chosen k, the per-layer
signature (to help choose layers) and the before/after metrics. Inputs are the fit-output folder
(docs/formats.md) and a list of metric rows, so the report never needs a model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricRow:
    """One metric of one task, before and after the edit."""

    task: str
    metric: str
    before: float
    after: float
    n: int

    @property
    def delta(self) -> float:
        """after - before."""
        return self.after - self.before


def metrics_table(rows: Sequence[MetricRow]) -> str:
    """A Markdown table of before/after metrics."""
    lines = [
        "| task | metric | n | before | after | delta |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.task} | {row.metric} | {row.n} | {row.before:.4f} | {row.after:.4f} | "
            f"{row.delta:+.4f} |"
        )
    return "\n".join(lines)


def _load_fit(fit_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    meta = json.loads((fit_dir / "fit.json").read_text(encoding="utf-8"))
    tensors = load_file(str(fit_dir / "projections.safetensors"))
    return meta, tensors


def _plot_spectra(meta: Mapping[str, Any], tensors: Mapping[str, np.ndarray], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = meta["layers"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    cmap = plt.get_cmap("viridis")
    for side, ax in zip(("pos", "neg"), axes):
        for i, info in enumerate(layers):
            s = np.asarray(tensors[f"layers.{info['layer']}.S_{side}"], dtype=np.float64)
            total = float(info.get(f"total_energy_{side}", float(np.sum(s**2)))) or 1.0
            cumulative = np.cumsum(s**2) / total
            ax.plot(
                np.arange(1, len(s) + 1),
                cumulative,
                color=cmap(i / max(1, len(layers) - 1)),
                lw=0.8,
            )
            ax.plot(info[f"k_{side}"], cumulative[info[f"k_{side}"] - 1], "k.", ms=3)
        ax.set_xscale("log")
        ax.set_xlabel("number of singular directions")
        ax.set_ylabel("cumulative energy")
        label = "Omega+ (kept)" if side == "pos" else "Omega- (removed)"
        ax.set_title(f"{label}: spectrum per layer, dots = chosen k")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _plot_layers(meta: Mapping[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [info["layer"] for info in meta["layers"]]
    fig, (ax_k, ax_sig) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax_k.plot(layers, [i["k_pos"] for i in meta["layers"]], "o-", label="k+ (kept)")
    ax_k.plot(layers, [i["k_neg"] for i in meta["layers"]], "s-", label="k- (removed)")
    ax_k.set_xlabel("layer")
    ax_k.set_ylabel("k")
    ax_k.set_title("chosen rank per layer")
    ax_k.legend()
    ax_k.grid(alpha=0.3)
    ax_sig.bar(layers, [i.get("signature", 0.0) for i in meta["layers"]], color="tab:purple")
    ax_sig.set_xlabel("layer")
    ax_sig.set_ylabel("signature")
    ax_sig.set_title("activation / label cross-covariance (higher = more separable)")
    ax_sig.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _plot_metrics(rows: Sequence[MetricRow], out: Path) -> None:
    # Only bounded scores share one axis; perplexity stays in the table.
    rows = [r for r in rows if 0.0 <= r.before <= 1.0 and 0.0 <= r.after <= 1.0]
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.task}\n{r.metric}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(rows)), 3.8))
    ax.bar(x - 0.2, [r.before for r in rows], 0.4, label="unedited")
    ax.bar(x + 0.2, [r.after for r in rows], 0.4, label="SEA edit")
    for xi, row in zip(x, rows):
        ax.annotate(
            f"{row.delta:+.3f}", (xi + 0.2, row.after), ha="center", va="bottom", fontsize=8
        )
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.05)
    ax.set_title("before / after")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_report(
    out_dir: str | Path,
    fit_dir: str | Path,
    metrics: Sequence[MetricRow],
    artifact_ref: str | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.md`` and its PNG plots into ``out_dir``; return the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta, tensors = _load_fit(Path(fit_dir))
    _plot_spectra(meta, tensors, out / "spectra.png")
    _plot_layers(meta, out / "layers.png")
    if metrics:
        _plot_metrics(metrics, out / "metrics.png")
    attrs = meta.get("store", {}).get("attrs", {})
    layer_rows = "\n".join(
        f"| {i['layer']} | {i['k_pos']} | {i['k_neg']} | {i['energy_pos']:.3f} | "
        f"{i['energy_neg']:.3f} | {i.get('signature', float('nan')):.4g} |"
        for i in meta["layers"]
    )
    text = [
        "# sea-dist run report",
        "",
        f"- artifact: `{artifact_ref}`" if artifact_ref else "- artifact: not published",
        f"- model: `{attrs.get('model_id')}` ({attrs.get('architecture')}, "
        f"d={attrs.get('d_model')}), site `{attrs.get('site')}`, token `{attrs.get('token')}`, "
        f"neutral `{attrs.get('neutral')}`, N={attrs.get('n_rows')}",
        f"- fit: combine `{meta.get('combine')}`, centred {meta.get('centred')}, "
        f"feature map `{meta.get('feature_map', {}).get('name')}`",
        *[f"- {note}" for note in notes],
        "",
        "## Before / after",
        "",
        metrics_table(metrics) if metrics else "(no evaluation was run)",
        "",
        "![before/after](metrics.png)" if (out / "metrics.png").exists() else "",
        "",
        "## Per layer",
        "",
        "![k and signature per layer](layers.png)",
        "",
        "![spectra](spectra.png)",
        "",
        "| layer | k+ | k- | energy+ | energy- | signature |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        layer_rows,
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(text), encoding="utf-8")
    log.debug("report written to %s", path)
    return path
