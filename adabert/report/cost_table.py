"""Per-stage cost table from Snakemake's ``benchmark:`` files: wall time and peak memory per job."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert.errors import AdabertError
from adabert.io import atomic_path
from adabert.report.common import write_table


def read_benchmarks(root: Path) -> pd.DataFrame:
    """One row per job: stage (first folder under root), job (rest of the path), seconds, max_rss_mb, and
    the job's end (the benchmark file's modification time, s since the epoch) and start (end - seconds)."""
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
        seconds, end = float(df["s"].iloc[-1]), tsv.stat().st_mtime
        rows.append({"stage": rel.parts[0], "job": "/".join(rel.parts[1:]), "seconds": seconds,
                     "max_rss_mb": float(rss.iloc[-1]) if rss.notna().any() else float("nan"),
                     "start": end - seconds, "end": end})
    return pd.DataFrame(rows, columns=["stage", "job", "seconds", "max_rss_mb", "start", "end"])


def summarise(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per stage: ``jobs``, ``wall_s`` (the sum of its jobs' wall times), ``mean_s``, ``max_s``, ``span_s``
    (from its first job's start to its last job's end: the stage's share of the run's clock, overlapping
    other stages where jobs ran side by side) and ``peak_rss_mb``; then a ``total`` row (span = the run's
    first start to last end)."""
    summary = (jobs.groupby("stage", sort=False)
               .agg(jobs=("job", "count"), wall_s=("seconds", "sum"), mean_s=("seconds", "mean"),
                    max_s=("seconds", "max"), first=("start", "min"), last=("end", "max"),
                    peak_rss_mb=("max_rss_mb", "max"))
               .reset_index())
    total = {"stage": "total", "jobs": len(jobs), "wall_s": jobs["seconds"].sum(), "mean_s": jobs["seconds"].mean(),
             "max_s": jobs["seconds"].max(), "first": jobs["start"].min(), "last": jobs["end"].max(),
             "peak_rss_mb": jobs["max_rss_mb"].max()}
    summary = pd.concat([summary, pd.DataFrame([total])], ignore_index=True)
    summary.insert(5, "span_s", summary["last"] - summary["first"])
    return summary.drop(columns=["first", "last"])


def write_cost_table(roots: list[Path], md_path: Path, csv_path: Path) -> pd.DataFrame:
    """The cost table over every benchmark folder in ``roots`` (the stage is the first folder below a root)."""
    jobs = pd.concat([read_benchmarks(root) for root in roots], ignore_index=True)
    if jobs.empty:
        raise AdabertError(f"{', '.join(map(str, roots))}: no benchmark files found")
    summary = summarise(jobs)
    span = float(summary["span_s"].iloc[-1])
    notes = ["wall_s: the sum of the stage's job wall times, from Snakemake's benchmark: files; peak resident "
             "memory in MB. span_s: from the stage's first job start to its last job end (file times; stages "
             "overlap where jobs ran side by side).",
             f"Total over all stages: {jobs['seconds'].sum():.0f} s of jobs; the jobs spanned {span:.0f} s "
             f"({span / 60:.1f} min) of the run's clock."]
    write_table(summary, md_path, csv_path, "Per-stage cost", notes)
    jobs_csv = csv_path.with_name(csv_path.stem + "_jobs.csv")
    with atomic_path(jobs_csv) as tmp:
        jobs.drop(columns=["start", "end"]).to_csv(tmp, index=False)
    return summary
