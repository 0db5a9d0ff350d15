"""PNG plots for the benchmark report, drawn from result JSON with matplotlib's Agg backend.

Each function returns the PNG as a ``data:image/png;base64,...`` URI so that the HTML page carries its
images inside (no outside asset), or ``None`` when there is nothing to draw.
"""

from __future__ import annotations

import base64
import io
from typing import Any


def _figure(ncols: int, width: float = 5.2, height: float = 3.6) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def serving(results: list[dict[str, Any]]) -> str | None:
    """TTFT p50/p95, end-to-end latency p95 and aggregate output tokens/s against concurrency, per target."""
    rows = [r for r in results if r.get("phase") == "measured"]
    if not rows:
        return None
    targets = list(dict.fromkeys(str(r["target"]) for r in rows))
    fig, (ax_ttft, ax_e2e, ax_tps) = _figure(3, width=4.6)
    for target in targets:
        mine = sorted((r for r in rows if r["target"] == target), key=lambda r: r["concurrency"])
        conc = [r["concurrency"] for r in mine]
        line = ax_ttft.plot(conc, [(r.get("ttft_ms") or {}).get("p95") for r in mine], marker="o",
                            label=f"{target} p95")[0]
        ax_ttft.plot(conc, [(r.get("ttft_ms") or {}).get("p50") for r in mine], marker=".", linestyle="--",
                     color=line.get_color(), label=f"{target} p50")
        ax_e2e.plot(conc, [(r.get("e2el_ms") or {}).get("p95") for r in mine], marker="o", label=target)
        ax_tps.plot(conc, [r.get("output_throughput") for r in mine], marker="o", label=target)
    for ax, title, unit in ((ax_ttft, "Time to first token", "ms"), (ax_e2e, "End-to-end latency p95", "ms"),
                            (ax_tps, "Output throughput (all streams)", "tokens/s")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel(unit)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["concurrency"] for r in rows}))
        ax.get_xaxis().set_major_formatter("{x:.0f}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _png(fig)


def quantizations(rows: list[dict[str, Any]]) -> str | None:
    """Size against perplexity and against KL divergence, one point per quantization type."""
    good = [r for r in rows if r.get("ppl") is not None and r.get("size_mib")]
    if not good:
        return None
    fig, (ax_ppl, ax_kl) = _figure(2)
    for ax, key, title in ((ax_ppl, "ppl", "Perplexity (lower is better)"),
                           (ax_kl, "kl_mean", "KL divergence vs reference (lower is better)")):
        pts = sorted((r["size_mib"], r[key], r["type"]) for r in good if r.get(key) is not None)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle=":")
        for x, y, label in pts:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("file size (MiB)")
        ax.grid(True, alpha=0.3)
    return _png(fig)


def recall(series: dict[str, dict[int, float]]) -> str | None:
    """Recall@k against k, one line per retrieval method."""
    if not series:
        return None
    fig, (ax,) = _figure(1, width=6)
    for name, points in series.items():
        ks = sorted(points)
        ax.plot(ks, [points[k] for k in ks], marker="o", label=name)
    ax.set_title("Retrieval recall@k", fontsize=10)
    ax.set_xlabel("k")
    ax.set_ylabel("recall")
    ax.set_ylim(0, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)
