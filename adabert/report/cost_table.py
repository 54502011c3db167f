"""Per-stage cost table from Snakemake's ``benchmark:`` files: wall time and peak memory per job."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert.errors import AdabertError
from adabert.io import atomic_path
from adabert.report.common import write_table


def read_benchmarks(root: Path) -> pd.DataFrame:
    """One row per job: stage (first folder under root), job (rest of the path), seconds, max_rss_mb."""
    rows = []
    for tsv in sorted(Path(root).rglob("*.tsv")):
        rel = tsv.relative_to(root).with_suffix("")
        try:
            df = pd.read_csv(tsv, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise AdabertError(f"{tsv}: not a Snakemake benchmark file ({exc})") from exc
        if "s" not in df or "max_rss" not in df:
            raise AdabertError(f"{tsv}: missing columns 's'/'max_rss' (not a Snakemake benchmark file)")
        rss = pd.to_numeric(df["max_rss"], errors="coerce")
        rows.append({"stage": rel.parts[0], "job": "/".join(rel.parts[1:]), "seconds": float(df["s"].iloc[-1]),
                     "max_rss_mb": float(rss.iloc[-1]) if rss.notna().any() else float("nan")})
    return pd.DataFrame(rows, columns=["stage", "job", "seconds", "max_rss_mb"])


def summarise(jobs: pd.DataFrame) -> pd.DataFrame:
    return (jobs.groupby("stage", sort=False)
            .agg(jobs=("job", "count"), total_s=("seconds", "sum"), mean_s=("seconds", "mean"),
                 max_s=("seconds", "max"), peak_rss_mb=("max_rss_mb", "max"))
            .reset_index())


def write_cost_table(roots: list[Path], md_path: Path, csv_path: Path) -> pd.DataFrame:
    """The cost table over every benchmark folder in ``roots`` (the stage is the first folder below a root)."""
    jobs = pd.concat([read_benchmarks(root) for root in roots], ignore_index=True)
    if jobs.empty:
        raise AdabertError(f"{', '.join(map(str, roots))}: no benchmark files found")
    summary = summarise(jobs)
    notes = ["Wall time (s) and peak resident memory (MB) of every job, from Snakemake's benchmark: files.",
             f"Total over all stages: {jobs['seconds'].sum():.0f} s."]
    write_table(summary, md_path, csv_path, "Per-stage cost", notes)
    jobs_csv = csv_path.with_name(csv_path.stem + "_jobs.csv")
    with atomic_path(jobs_csv) as tmp:
        jobs.to_csv(tmp, index=False)
    return summary
