"""The ablation table: each variant's dev metric, depth, size and speed next to the main variant's.

Inputs: the retrain ``metrics.json`` of every (variant, task, seed) run, the efficiency table's CSV
(speedup over BERT-base, PyTorch on CPU at the largest measured shape) and the variants' overrides
(the config's ``variants`` mapping, to describe each row). Only the tasks the ablations ran on are shown.

One long CSV row per (variant, task): mean, std and number of seeds of the dev metric, mean depth,
mean parameters and mean speedup; the Markdown/LaTeX table pivots the dev metric to one column per task.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from adabert.errors import AdabertError
from adabert.report.common import HELD_OUT, mean_std, read_results, split_label, summary_cell, write_tables
from adabert.report.efficiency_table import no_conv
from adabert.report.main_table import throughput_shape


def describe(override: dict) -> str:
    """``loss.beta=0, search.fixed_depth=3, augmented``: what a variant changes."""
    parts = []
    for section in ("search", "loss", "retrain"):
        for key, value in sorted((override.get(section) or {}).items()):
            parts.append(f"{section}.{key}={json.dumps(value) if not isinstance(value, str) else value}")
    augment = override.get("augment")
    if augment:
        parts.append("augmented data" + (f" ({', '.join(augment)})" if isinstance(augment, list) else ""))
    return ", ".join(parts) or "(main setting)"


def exceeds_spread(delta: float | None, std: float | None, main_std: float | None) -> bool | None:
    """Whether an ablation's effect (difference of means) is larger than the seed spread of both settings
    (the larger of their standard deviations); None when either has a single seed (no spread to compare)."""
    if delta is None or std is None or main_std is None or pd.isna(std) or pd.isna(main_std):
        return None
    return abs(delta) > max(std, main_std)


def build_ablation_table(results: list[dict], efficiency: pd.DataFrame, variants: dict,
                         main_variant: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long rows, pivot shown in Markdown/LaTeX)."""
    ablations = [v for v in variants if v != main_variant]
    tasks = sorted({r["task"] for r in results if r["variant"] in ablations})
    # the main table's speed column: PyTorch on CPU at the largest shape with a BERT-base reference
    shape = throughput_shape(efficiency)
    speed = efficiency.iloc[0:0] if shape is None else efficiency[
        (efficiency["engine"] == "torch") & (efficiency["device"] == "cpu")
        & (efficiency["batch"] == shape[0]) & (efficiency["seq_len"] == shape[1])]
    rows = []
    for variant in [main_variant, *ablations]:
        for task in tasks:
            group = [r for r in results if r["variant"] == variant and r["task"] == task]
            if not group:
                continue
            mean, std = mean_std([r["main_value"] for r in group])
            s = speed[(speed["variant"] == variant) & (speed["task"] == task)] if not speed.empty else speed
            rows.append({
                "variant": variant, "change": describe(variants.get(variant, {})), "task": task,
                "metric": group[0]["main_metric"], "split": split_label(group[0]["main_split"], group[0].get("splits", {})),
                "mean": mean, "std": std, "n_seeds": len(group), "seeds": " ".join(str(r["seed"]) for r in group),
                "depth_mean": mean_std([r["depth"] for r in group])[0],
                "n_no_conv": sum(bool(no_conv(r)) for r in group),
                "params_M_mean": mean_std([r["params"] / 1e6 for r in group])[0],
                "speedup_vs_bert_mean": float(s["speedup_vs_bert"].mean()) if not s.empty and s["speedup_vs_bert"].notna().any() else None,
                "delta_vs_main": None,
            })
    df = pd.DataFrame(rows)
    if df.empty:
        raise AdabertError("ablation table: no ablation variant has results (config 'variants' has only the main one?)")
    main = {r["task"]: r["mean"] for r in rows if r["variant"] == main_variant}
    df["delta_vs_main"] = [None if t not in main else m - main[t] for t, m in zip(df["task"], df["mean"])]
    main_std = {r["task"]: r["std"] for r in rows if r["variant"] == main_variant}
    df["exceeds_seed_spread"] = [exceeds_spread(d, s, main_std.get(t)) if v != main_variant else None
                                 for v, t, d, s in zip(df["variant"], df["task"], df["delta_vs_main"], df["std"])]
    shown_rows = []
    for variant in dict.fromkeys(df["variant"]):
        part = df[df["variant"] == variant]
        row = {"variant": variant, "change": part["change"].iloc[0]}
        for _, r in part.iterrows():
            star = " *" if r["exceeds_seed_spread"] is True else ""
            row[f"{r['task']} ({r['metric']})"] = summary_cell(r) + f" [n={r['n_seeds']}]{star}"
        row["depth"] = f"{part['depth_mean'].mean():.1f}"
        row["params_M"] = f"{part['params_M_mean'].mean():.2f}"
        sp = part["speedup_vs_bert_mean"].dropna()
        row["speedup_vs_bert"] = f"{sp.mean():.1f}" if not sp.empty else ""
        shown_rows.append(row)
    return df, pd.DataFrame(shown_rows).fillna("")


def beta_variants(variants: dict, main_variant: str, main_beta: float) -> dict[str, float]:
    """Variant -> beta for the main variant and every variant whose only change is loss.beta."""
    betas = {main_variant: float(main_beta)}
    for name, override in variants.items():
        changes = {(section, key) for section in ("search", "loss", "retrain")
                   for key in (override.get(section) or {})}
        if name != main_variant and changes == {("loss", "beta")} and not override.get("augment"):
            betas[name] = float(override["loss"]["beta"])
    return betas


def write_ablation_table(result_paths: list[Path], efficiency_csv: Path, variants: dict, main_variant: str,
                         out_stem: Path, main_beta: float | None = None,
                         beta_figure: Path | None = None) -> pd.DataFrame:
    results = read_results(result_paths)
    efficiency = pd.read_csv(efficiency_csv)
    df, shown = build_ablation_table(results, efficiency, variants, main_variant)
    notes = [
        "Dev metric of the retrained student, percent points: mean ± std over seeds [n = number of seeds]; "
        "* = the difference to the main setting is larger than the seed spread (the larger std of the two); "
        "without * an effect is within seed noise (or has a single seed) and is not claimed.",
        f"Every variant is searched and retrained with the main setting except for its change; '{main_variant}' is "
        "the main setting (all its seeds).",
        "depth, params_M (with embeddings) and speedup_vs_bert (BERT-base latency / student latency, PyTorch, CPU, "
        "the largest measured shape) are means over the shown tasks and seeds.",
    ]
    if (df["split"] == HELD_OUT).any():
        notes.append(f"† {HELD_OUT}.")
    write_tables(df, out_stem, "Ablations", notes, shown)
    if beta_figure is not None:
        from adabert.report.figures import beta_tradeoff_figure, message_figure  # lazy: matplotlib

        betas = beta_variants(variants, main_variant, 4.0 if main_beta is None else main_beta)
        if len(betas) > 1 and df["variant"].isin([v for v in betas if v != main_variant]).any():
            beta_tradeoff_figure(df, betas, beta_figure)
        else:
            message_figure("No beta ablation in this run (variants that change only loss.beta).", beta_figure)
    return df
