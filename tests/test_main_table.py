"""The main table, the paper-style efficiency tables and the paper's numbers, on constructed result records.

The inputs are built so that a wrong implementation gives a different answer: a task that is not a
column (STS-B) holds the extreme sizes and speedups, per-seed ranges differ from per-task-mean ranges,
and one task's split is held out and another's a dev subset.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from adabert.errors import AdabertError
from adabert.report.common import HELD_OUT
from adabert.report.efficiency_summary import write_efficiency_summary
from adabert.report.main_table import (PAPER_TASKS, STATUSES, build_main_table, load_reported, reported_numbers,
                                       write_main_table)
from adabert.report.readme import BEGIN, END, build_section, update_readme, write_section

REPO = Path(__file__).resolve().parents[1]
SHAPE = (128, 128)
OFFICIAL = {"dev": {"official": True, "n": 100}}
HELD = {"dev": {"official": False, "n": 500, "note": "held-out split carved from the labelled training rows"}}
CAPPED = {"dev": {"official": False, "capped": True, "n": 64, "n_available": 408}}
# task -> (metric, splits, [(seed, params_M, speedup over BERT-base, dev)])
MAIN = {
    "SST-2": ("accuracy", HELD, [(0, 4.0, 100.0, 80.0), (1, 6.0, 140.0, 82.0)]),   # means 5.0, 120.0
    "MRPC": ("f1", CAPPED, [(0, 5.5, 50.0, 81.0), (1, 6.5, 70.0, 83.0)]),         # means 6.0, 60.0
    "STS-B": ("pearson", OFFICIAL, [(0, 20.0, 5.0, 40.0), (1, 20.0, 5.0, 42.0)]),  # not a column
    "claims": ("accuracy", OFFICIAL, [(0, 7.0, 80.0, 60.0), (1, 7.0, 80.0, 62.0)]),  # a custom task
}
BERT_LATENCY_MS = 1000.0


def _records(tasks=MAIN):
    teachers, students, eff, refs = [], [], [], []
    refs.append({"model": "bert-base", "task": None, "engine": "torch", "device": "cpu", "batch": SHAPE[0],
                 "seq_len": SHAPE[1], "threads": 2, "params_M": 109.5, "latency_ms": BERT_LATENCY_MS,
                 "samples_per_s": SHAPE[0] / BERT_LATENCY_MS * 1e3})
    for i, (task, (metric, splits, seeds)) in enumerate(tasks.items()):
        teacher_dev = 90.0 + i
        teachers.append({"task": task, "model": "minilm", "params": 22.7e6, "main_value": teacher_dev,
                         "main_split": "dev", "main_metric": metric, "splits": splits})
        teacher_latency = BERT_LATENCY_MS / (4.0 + i)  # teacher speedups 4, 5, 6, 7
        refs.append({"model": "teacher", "task": task, "engine": "torch", "device": "cpu", "batch": SHAPE[0],
                     "seq_len": SHAPE[1], "threads": 2, "params_M": 22.7, "latency_ms": teacher_latency,
                     "samples_per_s": SHAPE[0] / teacher_latency * 1e3})
        for variant, scale in (("main", 1.0), ("bilstm", 0.5)):
            for seed, params, speedup, dev in seeds:
                students.append({"task": task, "variant": variant, "seed": seed, "main_value": dev * scale,
                                 "main_split": "dev", "main_metric": metric, "splits": splits,
                                 "params": params * 1e6 / scale})
                latency = BERT_LATENCY_MS / (speedup * scale)
                for engine, factor in (("torch", 1.0), ("onnxruntime", 2.0), ("onnxruntime-int8", 1.5)):
                    eff.append({"task": task, "variant": variant, "seed": seed, "engine": engine, "device": "cpu",
                                "batch": SHAPE[0], "seq_len": SHAPE[1], "threads": 2, "params_M": params / scale,
                                "latency_ms": latency / factor, "samples_per_s": SHAPE[0] / latency * 1e3 * factor,
                                "speedup_vs_bert": speedup * scale * factor, "metric": metric,
                                "split_kind": {"SST-2": HELD_OUT, "MRPC": "dev subset (64 of 408)"}.get(task, "dev"),
                                "student_dev": dev * scale, "teacher_dev": teacher_dev, "int8_drop": 0.5})
    return teachers, students, pd.DataFrame(eff), pd.DataFrame(refs)


def _write_inputs(tmp_path: Path, tasks=MAIN) -> dict:
    teachers, students, eff, refs = _records(tasks)
    paths = {"teachers": [], "students": []}
    for kind, records in (("teachers", teachers), ("students", students)):
        for i, record in enumerate(records):
            path = tmp_path / kind / f"{i}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
            paths[kind].append(path)
    paths["efficiency"] = tmp_path / "results" / "efficiency.csv"
    paths["efficiency"].parent.mkdir(parents=True)
    eff.to_csv(paths["efficiency"], index=False)
    refs.to_csv(tmp_path / "results" / "efficiency_references.csv", index=False)
    return paths


@pytest.fixture(scope="module")
def reported() -> dict:
    return load_reported(REPO / "paper/reported.yaml")


def _row(df: pd.DataFrame, method: str) -> pd.Series:
    return df[df["method"] == method].iloc[0]


def test_ranges_are_per_task_means_over_exactly_the_shown_tasks(reported):
    teachers, students, eff, refs = _records()
    df, notes = build_main_table(reported, teachers, students, eff, refs)
    assert "STS-B" not in df.columns and "claims" in df.columns  # a custom task is a column, STS-B is not
    ours = _row(df, "AdaBERT student (this run)")
    # per-task means of SST-2 (5.0, 120), MRPC (6.0, 60), claims (7.0, 80); STS-B (20.0, 5) would change both ends,
    # per-seed ranges would be 4.0-7.0 and 50.0-140.0
    assert ours["params_M"] == "5.0-7.0" and ours["speedup_vs_bert"] == "60.0-120.0"
    assert ours["range_tasks"] == "SST-2, MRPC, claims"
    bilstm = _row(df, "BiLSTM-SOFT (this run)")
    assert bilstm["params_M"] == "10.0-14.0" and bilstm["speedup_vs_bert"] == "30.0-60.0"
    teacher = _row(df, "Teacher: minilm (this run)")
    assert teacher["speedup_vs_bert"] == "4.0-7.0"  # SST-2 4x, MRPC 5x, claims 7x; STS-B's 6x lies inside
    assert teacher["claims"] == "93.0" and ours["claims"] == "61.0 ± 1.4" and ours["claims_value"] == 61.0
    text = "\n".join(notes)
    assert "per-task means" in text and "AdaBERT student (this run): SST-2, MRPC, claims" in text
    assert "STS-B" in text  # named as run but not shown
    assert ours["average"] == ""  # the paper's six are not all present


def test_split_marks_in_every_format_of_the_main_table(tmp_path):
    paths = _write_inputs(tmp_path)
    df = write_main_table(REPO / "paper/reported.yaml", paths["teachers"], paths["students"], paths["efficiency"],
                          tmp_path / "tables" / "main")
    ours = _row(df, "AdaBERT student (this run)")
    assert ours["SST-2"] == "81.0 ± 1.4 †" and ours["MRPC"] == "82.0 ± 1.4 ‡" and ours["claims"] == "61.0 ± 1.4"
    assert ours["SST-2_split"] == HELD_OUT and ours["MRPC_split"] == "dev subset (64 of 408)"
    md, tex = (tmp_path / "tables" / "main.md").read_text(), (tmp_path / "tables" / "main.tex").read_text()
    csv = (tmp_path / "tables" / "main.csv").read_text()
    for text in (md, tex):
        assert "81.0 ± 1.4 †" in text and "82.0 ± 1.4 ‡" in text
        assert f"† {HELD_OUT}: SST-2" in text and "‡ dev subset (n of N): MRPC" in text
        assert "claims (acc)" in text and "MRPC (F1)" in text
    assert HELD_OUT in csv and "dev subset (64 of 408)" in csv and "81.0 ± 1.4 †" in csv


def test_every_reported_number_has_a_source_and_a_status(reported, tmp_path):
    numbers = list(reported_numbers(reported))
    assert len(numbers) > 50
    for where, number in numbers:
        assert number["status"] in STATUSES and number["source"] in reported["sources"], where
    rows = {r["method"]: r for r in reported["main_table"]["rows"]}
    # what the research notes confirm: AdaBERT and BERT-base scores via the survey, the speedup range from the
    # abstract, MRPC without augmentation from the authors; the other baselines are unverified
    assert rows["AdaBERT"]["scores"]["RTE"] == {"value": 64.4, "source": "survey", "status": "secondary source"}
    assert rows["AdaBERT"]["speedup"]["status"] == "paper text" and rows["AdaBERT"]["average"]["value"] == 80.1
    assert rows["BERT12"]["scores"]["MNLI"]["status"] == "secondary source"
    for method in ("BERT12-T", "BERT6-PKD", "BERT3-PKD", "DistilBERT4", "TinyBERT4", "BiLSTM-SOFT"):
        assert {n["status"] for _, n in reported_numbers(rows[method])} == {"unverified"}, method
    assert reported["ablations"]["mrpc_f1_without_data_augmentation"]["status"] == "authors"
    assert reported["headline"]["compression_vs_bert_base"] == {"min": 11.5, "max": 17.0, "source": "abstract",
                                                                "status": "paper text"}
    for r in rows.values():
        scores = {t: s["value"] for t, s in r["scores"].items()}
        if r.get("average") and all(t in scores for t in PAPER_TASKS):
            assert sum(scores.values()) / 6 == pytest.approx(r["average"]["value"], abs=0.06), r["method"]

    # a number without a status, or with an unknown one, is refused
    bad = (REPO / "paper/reported.yaml").read_text().replace(
        "SST-2: {value: 91.8, source: survey, status: secondary source}", "SST-2: {value: 91.8, source: survey}")
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(AdabertError, match=r"AdaBERT\]\.scores\.SST-2: status None"):
        load_reported(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text(bad.replace("SST-2: {value: 91.8, source: survey}", "SST-2: 91.8"))
    with pytest.raises(AdabertError, match="every number needs"):
        load_reported(tmp_path / "bad2.yaml")


def test_the_main_table_shows_each_rows_status(reported, tmp_path):
    paths = _write_inputs(tmp_path)
    df = write_main_table(REPO / "paper/reported.yaml", paths["teachers"], paths["students"], paths["efficiency"],
                          tmp_path / "main")
    ada = _row(df, "AdaBERT")
    assert ada["status"] == "paper text: speedup; secondary source: params, scores, average"
    assert "survey (Lee, Li, Vu) Table 5" in ada["source"] and "abstract" in ada["source"]
    assert _row(df, "BERT6-PKD")["status"] == "unverified"
    assert _row(df, "BERT12")["status"] == "paper text: params; secondary source: scores, average; unverified: speedup"
    md = (tmp_path / "main.md").read_text()
    assert "(unverified)" not in md and "| status" in md.replace("  ", " ")
    assert "paper text: speedup; secondary source: params, scores, average" in md
    assert ada["MRPC"] == "85.1" and ada["split"] == "test"


def test_only_custom_tasks_fill_their_own_columns(reported):
    only = {"claims": MAIN["claims"], "reviews": ("f1", OFFICIAL, [(0, 3.0, 200.0, 70.0)])}
    teachers, students, eff, refs = _records(only)
    df, notes = build_main_table(reported, teachers, students, eff, refs)
    assert [c for c in df.columns if c.endswith("_value")] == [f"{t}_value" for t in (*PAPER_TASKS, "claims",
                                                                                       "reviews")]
    ours, teacher = _row(df, "AdaBERT student (this run)"), _row(df, "Teacher: minilm (this run)")
    assert ours["claims"] == "61.0 ± 1.4" and ours["reviews"] == "70.0"
    assert teacher["claims"] == "90.0" and teacher["reviews"] == "91.0"
    assert ours["params_M"] == "3.0-7.0" and ours["speedup_vs_bert"] == "80.0-200.0"
    assert _row(df, "AdaBERT")["MRPC"] == "85.1"  # the paper's rows keep the GLUE columns
    assert "Not in this run: SST-2, MRPC, QQP, MNLI, QNLI, RTE." in notes


def test_efficiency_tables_mark_held_out_and_subset_splits(tmp_path):
    paths = _write_inputs(tmp_path)
    df = write_efficiency_summary(paths["efficiency"], "main", tmp_path / "paper" / "efficiency")
    ada = df[df["model"] == "AdaBERT"].set_index("task")
    assert ada.loc["SST-2", "params_M"] == 5.0 and ada.loc["SST-2", "torch_speedup_vs_bert"] == 120.0
    assert ada.loc["MRPC", "onnxruntime_speedup_vs_bert"] == 120.0 and ada.loc["MRPC", "int8_vs_ort_fp32"] == 0.75
    assert ada.loc["SST-2", "split"] == HELD_OUT and ada.loc["SST-2", "dev"] == 81.0
    teacher = df[df["model"] == "Teacher"].set_index("task")
    assert teacher.loc["MRPC", "torch_speedup_vs_bert"] == 5.0 and teacher.loc["MRPC", "dev"] == 91.0
    for stem in ("efficiency", "efficiency_per_task"):
        md = (tmp_path / "paper" / f"{stem}.md").read_text()
        tex = (tmp_path / "paper" / f"{stem}.tex").read_text()
        csv = (tmp_path / "paper" / f"{stem}.csv").read_text()
        for text in (md, tex):
            assert "81.0 †" in text and "82.0 ‡" in text, stem
            assert f"† {HELD_OUT}" in text and "‡ dev subset (n of N)" in text, stem
        assert HELD_OUT in csv and "dev subset (64 of 408)" in csv, stem
    wide = (tmp_path / "paper" / "efficiency_per_task.md").read_text()
    # the paper's layout: task x {params, speedup, dev} per model, every task of the run (STS-B too)
    assert "AdaBERT: params (M)" in wide and "BiLSTM-SOFT: speedup" in wide and "Teacher: dev" in wide
    assert "STS-B (pearson)" in wide and "120.0x" in wide
    long = pd.read_csv(tmp_path / "paper" / "efficiency_per_task.csv")
    assert set(long["model"]) == {"Teacher", "AdaBERT", "BiLSTM-SOFT"} and len(long) == 3 * len(MAIN)


def test_readme_section_agrees_with_the_tables_and_its_links_resolve(tmp_path):
    paths = _write_inputs(tmp_path)
    paper = tmp_path / "paper"
    main = write_main_table(REPO / "paper/reported.yaml", paths["teachers"], paths["students"], paths["efficiency"],
                            paper / "tables" / "main")
    write_efficiency_summary(paths["efficiency"], "main", paper / "tables" / "efficiency")
    figure = paper / "figures" / "speedup.png"
    figure.parent.mkdir(parents=True)
    figure.write_bytes(b"png")
    measurement = tmp_path / "m.json"
    measurement.write_text('{"threads": 2, "machine": {"cpu_model": "CPU", "cores_available": 2}}')
    section = write_section(paper / "tables" / "main.md", figure, measurement, paper / "README_results.md",
                            paper / "tables" / "efficiency.csv")
    ours = _row(main, "AdaBERT student (this run)")
    # the same tasks and per-task means as the main table: params 5.0-7.0 M, 109.5 / 7.0 .. 109.5 / 5.0
    assert f"- parameters (with embeddings): {ours['params_M']}M, 15.6-21.9x fewer than BERT-base" in section
    assert f"- speedup over BERT-base (PyTorch, CPU): {ours['speedup_vs_bert']}x, median 80.0x" in section
    assert "int8 / fp32 throughput: median 0.75x" in section and "(SST-2, MRPC, claims)" in section
    assert "](figures/speedup.png)" in section and "](tables/efficiency.md)" in section
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{BEGIN}\nold\n{END}\n")
    update_readme(readme, paper / "README_results.md")
    text = readme.read_text()
    assert "](paper/figures/speedup.png)" in text and "](paper/tables/efficiency.md)" in text
    # every relative link resolves from the file that holds it
    for holder in (paper / "README_results.md", readme):
        for target in re.findall(r"\]\(([^)]+)\)", holder.read_text()):
            assert (holder.parent / target).exists(), (holder, target)
    assert build_section(paper / "tables" / "main.md", figure, measurement, paper).count("](figures/speedup.png)") == 1


def test_figures_show_the_tasks_of_the_run(tmp_path):
    from adabert.report import figures

    _, _, eff, refs = _records()
    main = eff[eff["variant"] == "main"]
    speed = figures.speedup_figure(main, tmp_path / "speedup", batch=SHAPE[0], seq_len=SHAPE[1])
    assert set(speed["task"]) == set(MAIN)  # a custom task and a GLUE task outside the paper's six included
    torch_speed = speed[speed["engine"] == "torch"].set_index("task")["speedup_vs_bert"]
    assert torch_speed["claims"] == 80.0 and torch_speed["SST-2"] == 120.0
    plotted = figures.pareto_figure(eff, refs, {"claims": 93.0}, tmp_path / "pareto")
    assert set(plotted) == set(MAIN) and plotted["claims"]["teacher"][1] == 93.0
