"""The search table: every (variant, task, seed)'s derived architecture and search cost."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from adabert.io import read_json
from adabert.nas.genotype import Genotype
from adabert.report.common import folder_of, split_label, write_table


def _cell_text(genotype: dict) -> str:
    parts = []
    for j, node in enumerate(genotype["nodes"]):
        parts.append(f"n{j + 2}=" + "+".join(f"{e['op']}({e['input']})" for e in node))
    return "; ".join(parts)


def search_rows(derived: list[Path]) -> pd.DataFrame:
    rows = []
    for path in derived:
        folder = folder_of(path)
        summary = read_json(folder / "derive.json")
        search = read_json(Path(summary["search_dir"]) / "metrics.json")
        genotype = summary["genotype"]
        final = search.get("final") or {}
        ops = Counter(e["op"] for node in genotype["nodes"] for e in node)
        row = {
            "variant": search["variant"],
            "task": search["task"],
            "seed": search["seed"],
            "depth": genotype["depth"],
            "cell": _cell_text(genotype),
            "head": genotype.get("head", "mean"),
            "params_M": summary["params"] / 1e6,
            "params_no_emb_M": summary["params_without_embeddings"] / 1e6,
            "main_metric": search["main_metric"],
            "split_kind": split_label(search["main_split"], search.get("splits", {})),
            "dev_main": search["best_dev_main"],
            "dev_loss": search.get("best_dev_loss"),
            "best_epoch": search["best_epoch"],
            "max_op_prob_mean": final.get("max_op_prob_mean"),
            "depth_max_prob": final.get("depth_max_prob"),
            "gflops": summary.get("gflops_seq128"),
            "no_conv": not Genotype.from_dict(genotype).has_conv,
            "steps": (search.get("schedule") or {}).get("total_steps"),
            "search_time_s": search["total_time_s"],
            "train_examples_per_s": search["train_examples_per_s"],
        }
        for op in genotype["ops"]:
            if op != "none":
                row[f"n_{op}"] = ops.get(op, 0)
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(["variant", "task", "seed"]).reset_index(drop=True) if not df.empty else df


def write_search_table(derived: list[Path], md_path: Path, csv_path: Path) -> pd.DataFrame:
    df = search_rows(derived)
    notes = [
        "depth = number of cells K; cell = the searched cell shared by all K cells: for each intermediate node "
        "(n2..n4), its two kept edges as op(input), inputs 0/1 = the cell's two inputs.",
        "n_<op> = how many of the cell's kept edges use that op. params include the 128-d embedding tables.",
        "head = the classifier's read-out: mean (the paper's attentive sum of the layers' token means) or "
        "interaction (sentence pairs: also the product and absolute difference of the two sentences' "
        "embedding means; search.pair_head).",
        "max_op_prob_mean = the mean over the cell's edges of the strongest op's probability at the end of the "
        "search (0.1 = uniform over 10 ops); depth_max_prob = the largest probability of the depth distribution "
        "(0.125 = uniform over 8); both say whether the architecture distribution committed.",
        "no_conv = the cell keeps no convolution (pools and skips only: no learned mixing of neighbouring tokens). "
        "gflops = one example of two 128-token inputs.",
        "dev_main / dev_loss = the selected round's derived architecture on the search's evaluation rows (supernet "
        "weights, before retraining; the round is chosen on dev_loss unless search.selection says otherwise), "
        "on the task's main evaluation split; split_kind says whether that is the official GLUE dev set, "
        "a partial copy of it ('dev subset') or a 'held-out split, not official dev' carved out of the training data.",
    ]
    write_table(df, md_path, csv_path, "Searched architectures", notes)
    return df
