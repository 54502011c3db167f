"""Figures of the report (matplotlib, PNG + PDF), each built from the workflow's result files only.

* :func:`searched_cell_figure` -- the searched cell of a task drawn as a DAG (inputs, intermediate
  nodes, kept edges labelled with their ops, the attentive output) with its depth K.
* :func:`search_dynamics_figure` -- per epoch: the softmax of every edge's strongest op, the depth
  distribution and the derived depth (from ``alpha_history.json``).
* :func:`probe_figure` -- dev metric of the teacher's probe on every layer, one line per task.
* :func:`speedup_figure` -- speedup over BERT-base per task and engine (efficiency table rows).
* :func:`beta_tradeoff_figure` -- dev metric against beta and against student size (ablation rows).
* :func:`pareto_figure` -- dev metric vs latency of students, teachers and BERT-base-sized references,
  with the Pareto front of the students.

Every builder returns the values it plotted (so tests can compare them with the result JSONs) and
writes ``<stem>.png`` and ``<stem>.pdf`` atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display: figures are files

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402

from adabert.errors import AdabertError  # noqa: E402
from adabert.io import atomic_path, read_json  # noqa: E402
from adabert.nas.genotype import Genotype  # noqa: E402
from adabert.report.common import BASELINE_LABELS, folder_of  # noqa: E402

SHORT_OPS = {
    "std_conv_3": "conv3", "std_conv_5": "conv5", "std_conv_7": "conv7",
    "dil_conv_3": "dil3", "dil_conv_5": "dil5", "dil_conv_7": "dil7",
    "max_pool_3": "max3", "avg_pool_3": "avg3", "skip_connect": "id", "none": "zero",
}


def save_figure(fig, stem: Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf (atomically) and close the figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = stem.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def message_figure(text: str, stem: Path) -> list[Path]:
    """A figure that says why there is nothing to plot (never an empty or made-up plot)."""
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True)
    ax.axis("off")
    return save_figure(fig, stem)


# -- the searched cell -------------------------------------------------------------------------------
def cell_layout(n_nodes: int) -> dict[int | str, tuple[float, float]]:
    """Positions: the two inputs on the left, intermediate nodes 2.. in a row, the output on the right."""
    pos: dict[int | str, tuple[float, float]] = {0: (0.0, 1.1), 1: (0.0, -1.1)}
    for j in range(n_nodes):
        pos[j + 2] = (1.8 + 1.6 * j, 0.55 if j % 2 == 0 else -0.55)
    pos["out"] = (1.5 + 1.5 * n_nodes, 0.0)
    return pos


def searched_cell_figure(genotypes: dict[str, Genotype], stem: Path) -> dict[str, list[tuple[int, int, str]]]:
    """One panel per task: the derived cell's kept edges ``(input, node, op)`` and its depth."""
    if not genotypes:
        raise AdabertError("searched-cell figure: no genotype given")
    tasks = list(genotypes)
    ncols = min(3, len(tasks))
    nrows = -(-len(tasks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.5 * ncols, 2.6 * nrows), squeeze=False)
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    drawn: dict[str, list[tuple[int, int, str]]] = {}
    for ax, task in zip(axes.flat, tasks):
        g = genotypes[task]
        pos = cell_layout(len(g.nodes))
        edges = [(i, j + 2, op) for j, node in enumerate(g.nodes) for i, op in node]
        drawn[task] = edges
        for i, node, op in edges:
            (x0, y0), (x1, y1) = pos[i], pos[node]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "-|>", "color": "0.35", "shrinkA": 14, "shrinkB": 14})
            # labels sit a third of the way along their edge: edges into one node then fan apart
            t = 0.33 if i < 2 else 0.5
            ax.text(x0 + t * (x1 - x0), y0 + t * (y1 - y0), SHORT_OPS.get(op, op), fontsize=8, ha="center",
                    va="center", color="tab:blue",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "tab:blue", "lw": 0.5})
        for j in range(len(g.nodes)):
            (x0, y0), (x1, y1) = pos[j + 2], pos["out"]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "-|>", "color": "0.75", "linestyle": "--", "shrinkA": 14,
                                    "shrinkB": 14})
        for key, (x, y) in pos.items():
            colour = "#dddddd" if key in (0, 1) else ("#ffe9a8" if key == "out" else "#cfe3ff")
            ax.scatter([x], [y], s=700, color=colour, edgecolors="0.3", zorder=3)
            label = {0: "c$_{k-2}$", 1: "c$_{k-1}$", "out": "c$_k$"}.get(key, str(key))
            ax.text(x, y, label, ha="center", va="center", fontsize=9, zorder=4)
        ax.set_title(f"{task}: searched cell, depth K = {g.depth} (of k_max {g.k_max})", fontsize=10)
        ax.set_xlim(-0.6, pos["out"][0] + 0.6)
        ax.set_ylim(-1.6, 1.6)
        ax.axis("off")
    fig.text(0.5, 0.0, "The cell is shared by all K cells; dashed: attentive sum of the nodes into the cell output.",
             ha="center", fontsize=8, color="0.3")
    fig.tight_layout()
    save_figure(fig, stem)
    return drawn


# -- search dynamics -----------------------------------------------------------------------------------
def search_dynamics_figure(histories: dict[str, dict], stem: Path) -> dict[str, dict]:
    """Per task: the strongest op's softmax per edge, the depth distribution and the derived depth per epoch."""
    if not histories:
        raise AdabertError("search-dynamics figure: no alpha history given")
    tasks = list(histories)
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 2.6 * len(tasks)), squeeze=False)
    plotted: dict[str, dict] = {}
    for row, task in zip(axes, tasks):
        h = histories[task]
        epochs = [e["epoch"] for e in h["epochs"]]
        top = [[max(edge) for edge in e["softmax_ops"]] for e in h["epochs"]]
        depth = [e["softmax_depth"] for e in h["epochs"]]
        derived = [e["genotype"]["depth"] for e in h["epochs"]]
        plotted[task] = {"epochs": epochs, "top_op_prob": top, "depth_prob": depth, "derived_depth": derived}
        for k, edge in enumerate(h["edges"]):
            row[0].plot(epochs, [t[k] for t in top], lw=1, label=f"{edge['input']}->{edge['node']}")
        row[0].axhline(1 / len(h["ops"]), color="0.6", ls=":", lw=1)
        row[0].set_title(f"{task}: strongest op's probability per edge (dotted: uniform)", fontsize=9)
        row[0].set_xlabel("epoch")
        row[0].legend(fontsize=6, ncol=3)
        for d in range(h["k_max"]):
            row[1].plot(epochs, [p[d] for p in depth], lw=1, label=f"K={d + 1}")
        row[1].set_ylabel("P(K)", fontsize=8)
        twin = row[1].twinx()
        twin.step(epochs, derived, "k--", where="mid", lw=1.5, label="derived K")
        twin.set_ylim(0.5, h["k_max"] + 0.5)
        twin.set_yticks(range(1, h["k_max"] + 1))
        twin.set_ylabel("derived K (dashed)", fontsize=8)
        row[1].set_title(f"{task}: depth distribution (best epoch {h.get('best_epoch')})", fontsize=9)
        row[1].set_xlabel("epoch")
        row[1].legend(fontsize=6, ncol=4)
        for ax in row:
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    save_figure(fig, stem)
    return plotted


# -- teacher probes ----------------------------------------------------------------------------------------
def probe_figure(probes: dict[str, dict], stem: Path) -> dict[str, list[float]]:
    """Dev metric of each teacher layer's probe (main eval split), one line per task."""
    if not probes:
        raise AdabertError("probe figure: no probes.json given")
    fig, ax = plt.subplots(figsize=(7, 4))
    plotted = {}
    for task, p in probes.items():
        values = [float(layer["main_value"]) for layer in p["layers"]]
        plotted[task] = values
        ax.plot([layer["layer"] for layer in p["layers"]], values, marker="o", lw=1, label=task)
    ax.set_xlabel("teacher layer (0 = embedding mean, l = [CLS] of layer l)")
    ax.set_ylabel("probe dev metric (task's main metric, %)")
    ax.set_title("Where the task knowledge sits in the teacher")
    ax.legend(fontsize=7, ncol=3)
    save_figure(fig, stem)
    return plotted


# -- efficiency ----------------------------------------------------------------------------------------------
def speedup_figure(efficiency: pd.DataFrame, stem: Path, batch: int | None = None,
                   seq_len: int | None = None) -> pd.DataFrame:
    """Mean speedup vs BERT-base over seeds, per task and engine (one device and shape per figure)."""
    df = efficiency.dropna(subset=["speedup_vs_bert"])
    if batch is not None:
        df = df[df["batch"] == batch]
    if seq_len is not None:
        df = df[df["seq_len"] == seq_len]
    if df.empty:
        raise AdabertError("speedup figure: no row with a speedup vs BERT-base for the chosen shape")
    table = df.groupby(["task", "engine", "device"], as_index=False)["speedup_vs_bert"].mean()
    groups = sorted({(e, d) for e, d in zip(table["engine"], table["device"])})
    tasks = sorted(table["task"].unique())
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(tasks) * max(1, len(groups))), 4))
    width = 0.8 / len(groups)
    for g, (engine, device) in enumerate(groups):
        sub = table[(table["engine"] == engine) & (table["device"] == device)].set_index("task")
        xs = [t + g * width for t in range(len(tasks))]
        ys = [float(sub["speedup_vs_bert"].get(task, float("nan"))) for task in tasks]
        bars = ax.bar(xs, ys, width, label=f"{engine} / {device}")
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks([t + width * (len(groups) - 1) / 2 for t in range(len(tasks))], tasks)
    ax.set_ylabel("speedup over BERT-base (x)")
    shape = f"batch {batch}, seq {seq_len}" if batch and seq_len else "all shapes"
    ax.set_title(f"Student speedup over BERT-base, same machine and engine ({shape})")
    ax.legend(fontsize=8)
    save_figure(fig, stem)
    return table


def beta_tradeoff_figure(ablations: pd.DataFrame, betas: dict[str, float], stem: Path) -> pd.DataFrame:
    """The efficiency weight beta against accuracy and size: per task, the retrained students' dev metric
    (mean ± std over seeds) against their parameters, one point per beta (the ablation table's long rows
    of the variants that differ from the main one only in loss.beta, plus the main one)."""
    df = ablations[ablations["variant"].isin(list(betas))].copy()
    if df.empty:
        raise AdabertError("beta figure: no ablation row of a beta variant")
    df["beta"] = [betas[v] for v in df["variant"]]
    df = df.sort_values(["task", "beta"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for task, part in df.groupby("task"):
        for ax, x in zip(axes, ("beta", "params_M_mean")):
            line = ax.errorbar(part[x], part["mean"], yerr=part["std"].fillna(0.0), marker="o", capsize=3,
                               label=f"{task} ({part['metric'].iloc[0]})")
            if x == "params_M_mean":
                for _, r in part.iterrows():
                    ax.annotate(f"β={r['beta']:g}", (r[x], r["mean"]), fontsize=7, xytext=(3, 3),
                                textcoords="offset points", color=line[0].get_color())
    axes[0].set_xscale("symlog", linthresh=1.0)
    axes[0].set_xlabel("β (weight of the efficiency loss)")
    axes[1].set_xlabel("student parameters (M, with embeddings)")
    for ax in axes:
        ax.set_ylabel("dev metric (%), mean ± std over seeds")
    axes[0].legend(fontsize=8)
    fig.suptitle("Accuracy / size trade-off of the efficiency weight β")
    save_figure(fig, stem)
    return df[["task", "variant", "beta", "mean", "std", "n_seeds", "params_M_mean", "speedup_vs_bert_mean"]]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points (latency, metric) not dominated by a faster-or-equal point with a higher-or-equal metric."""
    front, best = [], float("-inf")
    for lat, metric in sorted(points, key=lambda p: (p[0], -p[1])):
        if metric > best:
            front.append((lat, metric))
            best = metric
    return front


def pareto_figure(efficiency: pd.DataFrame, references: pd.DataFrame, teachers: dict[str, float], stem: Path,
                  engine: str = "torch", device: str = "cpu", main_variant: str = "main") -> dict[str, dict]:
    """Per task: AdaBERT students, ablation students and baselines (latency, dev metric), the Pareto
    front over all of them, and the teacher's point."""
    df = efficiency[(efficiency["engine"] == engine) & (efficiency["device"] == device)].dropna(
        subset=["latency_ms", "student_dev"])
    if df.empty:
        raise AdabertError(f"Pareto figure: no student row for engine {engine!r} on {device!r}")
    tasks = sorted(df["task"].unique())
    ncols = min(len(tasks), 5)
    nrows = (len(tasks) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    plotted = {}
    groups = [("AdaBERT", lambda v: v == main_variant, "o", "tab:blue"),
              ("ablations", lambda v: v != main_variant and v not in BASELINE_LABELS, ".", "tab:gray"),
              *[(label, (lambda k: lambda v: v == k)(kind), marker, color)
                for (kind, label), marker, color in zip(BASELINE_LABELS.items(), "sD^", ("tab:orange", "tab:purple", "tab:olive"))]]
    for ax, task in zip(axes.flat, tasks):
        sub = df[df["task"] == task]
        points = list(zip(sub["latency_ms"].astype(float), sub["student_dev"].astype(float)))
        front = pareto_front(points)
        for label, member, marker, color in groups:
            part = sub[[member(v) for v in sub["variant"]]]
            if not part.empty:
                ax.scatter(part["latency_ms"].astype(float), part["student_dev"].astype(float), s=20, marker=marker,
                           color=color, label=label)
        ax.plot(*zip(*front), "g-", lw=1, label="Pareto front")
        ref = references[(references["model"] == "teacher") & (references["task"] == task)
                         & (references["engine"] == engine) & (references["device"] == device)]
        teacher_point = None
        if not ref.empty and task in teachers:
            teacher_point = (float(ref["latency_ms"].iloc[0]), float(teachers[task]))
            ax.scatter(*teacher_point, marker="*", s=90, color="tab:red", label="teacher")
        plotted[task] = {"students": points, "front": front, "teacher": teacher_point}
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels overlap on short spans
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("batch latency (ms, log)")
        ax.set_ylabel(str(sub["metric"].iloc[0]))
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.suptitle(f"Dev metric vs latency ({engine} / {device})", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))  # room for the legend below the panels
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="lower center", ncol=len(handles),
               frameon=False)
    save_figure(fig, stem)
    return plotted


# -- the stage ---------------------------------------------------------------------------------------------------
def write_figures(derive_dirs: list[Path], probe_files: list[Path], out_dir: Path,
                  efficiency_csv: Path | None = None, teacher_files: Sequence[Path] = (),
                  main_variant: str = "main") -> list[Path]:
    """All figures from the workflow's outputs; one searched cell / dynamics panel per task (the main
    variant's first seed); the speedup figure shows the main variant's students."""
    out_dir = Path(out_dir)
    genotypes, histories = {}, {}
    for d in sorted(folder_of(p) for p in derive_dirs):
        summary = read_json(d / "derive.json")
        search = read_json(Path(summary["search_dir"]) / "metrics.json")
        if search["variant"] != main_variant:
            continue  # ablations: the ablation table
        key = search["task"]
        if key in genotypes:
            continue  # first seed only (sorted: seed0 first)
        genotypes[key] = Genotype.load(d / "genotype.json")
        histories[key] = read_json(Path(summary["search_dir"]) / "alpha_history.json")
    probes = {}
    for p in probe_files:
        folder = folder_of(p)
        probes[folder.name] = read_json(folder / "probes.json")
    written = [out_dir / "searched_cells.png", out_dir / "search_dynamics.png", out_dir / "probes.png"]
    searched_cell_figure(genotypes, out_dir / "searched_cells")
    search_dynamics_figure(histories, out_dir / "search_dynamics")
    probe_figure(probes, out_dir / "probes")
    if efficiency_csv is not None:
        eff = pd.read_csv(efficiency_csv)
        refs_path = Path(efficiency_csv).with_name(Path(efficiency_csv).stem + "_references.csv")
        refs = pd.read_csv(refs_path) if refs_path.is_file() else pd.DataFrame(columns=["model", "task"])
        teachers = {}
        for t in teacher_files:
            m = read_json(t)
            teachers[m["task"]] = m["main_value"]
        rows = eff.dropna(subset=["speedup_vs_bert"])
        if rows.empty:
            message_figure("No speedup: no BERT-base measurement with the students' engine, device and shape\n"
                           "(measure.include_bert_base is false, or no shape was measured).", out_dir / "speedup")
        else:
            b, s = max(zip(rows["batch"], rows["seq_len"]))  # the paper's throughput shape when present
            speedup_figure(eff[eff["variant"] == main_variant], out_dir / "speedup", batch=int(b), seq_len=int(s))
        pareto_figure(eff, refs, teachers, out_dir / "pareto", main_variant=main_variant)
        written += [out_dir / "speedup.png", out_dir / "pareto.png"]
    return written
