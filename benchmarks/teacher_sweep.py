"""Teacher recipe sweep: dev metric of the fine-tuned teacher per (task, learning rate, epochs, cap, init).

Runs the pipeline's own teacher fine-tuning (``adabert.teacher.fine_tune``: the shared loop, the config's
precision and length-grouped batches) on a task's prepared data folder (``<results>/data/<task>`` of a
workflow run) once per setting; each setting overrides keys of the default config's ``teacher`` section
(``config/config.yaml``, per-task recipe applied first). ``init`` names another task's teacher folder
to start from (e.g. the MNLI teacher for RTE). The dev metric after every epoch is recorded (the linear
schedule spans the setting's epochs, so the epoch-1 value of a 3-epoch run is not a 1-epoch run).

``--from-run RESULTS:LABEL`` imports every teacher a workflow run trained (``RESULTS/teacher/*/metrics.json``)
as sweep rows under that label, so a whole run with one recipe is a sweep point without training again.

Results are merged into ``--out`` (JSON, keyed by task and setting) and the whole table is written as
Markdown next to it (``--md``), with the workflow run's own teachers as reference rows when
``--reference`` points at a teacher table CSV.

Usage:
    python benchmarks/teacher_sweep.py --results results --task RTE \
        --setting 'pretrained lr 1e-4:{"learning_rate": 1e-4, "init_from": null}' \
        --out docs/results/teacher_sweep.json --md docs/results/teacher_sweep.md
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert import artifacts, config, io  # noqa: E402
from adabert.batching import PACKED_INPUTS  # noqa: E402
from adabert.measure.machine import cpu_model  # noqa: E402
from adabert.teacher import fine_tune, load_model  # noqa: E402


def run_setting(base: dict, task: str, name: str, overrides: dict, results: Path) -> dict:
    cfg = config.stage_config(base, "teacher", task)
    cfg["teacher"] = {**cfg["teacher"], **overrides}
    data = artifacts.read_data(results / "data" / task)
    splits = {s: data.split(s, PACKED_INPUTS) for s in ["train", *data.eval_splits]}
    init = cfg["teacher"].get("init_from")
    init_dir = results / "teacher" / init if init else None
    io.set_seed(int(cfg["teacher"]["seed"]))
    model = load_model(cfg["teacher"]["model"], data, splits, init_dir)
    start = time.perf_counter()
    record, train = fine_tune(cfg, task, data, splits, model, torch.device("cpu"))
    per_epoch = [round(float(e["eval"][data.main_split][data.spec.main_metric]), 2) for e in record["history"]]
    return {"task": task, "setting": name, "learning_rate": cfg["teacher"]["learning_rate"],
            "epochs": cfg["teacher"]["epochs"], "n_train": int(train["labels"].shape[0]),
            "init_from": init, "precision": record["precision"], "metric": data.spec.main_metric,
            "dev_per_epoch": per_epoch, "best": max(per_epoch),
            "train_time_s": round(record["train_time_s"], 1), "wall_s": round(time.perf_counter() - start, 1)}


def imported_runs(results: Path, label: str) -> list[dict]:
    """The teachers of a workflow run as sweep rows (their recipe and dev curve from each metrics.json)."""
    runs = []
    for path in sorted(results.glob("teacher/*/metrics.json")):
        m = io.read_json(path)
        per_epoch = [round(float(v), 2) for v in m.get("dev_per_epoch", [])]
        runs.append({"task": m["task"], "setting": label, "learning_rate": m["learning_rate"], "epochs": m["epochs"],
                     "n_train": m["n_train"], "init_from": m.get("init_from"), "precision": m["precision"],
                     "metric": m["main_metric"], "dev_per_epoch": per_epoch, "best": round(m["main_value"], 2),
                     "train_time_s": round(m["train_time_s"], 1), "wall_s": None})
    if not runs:
        raise SystemExit(f"--from-run: no teacher/*/metrics.json under {results}")
    return runs


def merged(runs: list[dict], run: dict) -> list[dict]:
    """``runs`` with ``run`` replacing any earlier row of the same task and setting."""
    return [r for r in runs if (r["task"], r["setting"]) != (run["task"], run["setting"])] + [run]


def markdown(runs: list[dict], reference: Path | None, notes: list[str] = ()) -> str:
    df = pd.DataFrame(runs)
    df["dev_per_epoch"] = [" / ".join(f"{v:.1f}" for v in r) or "(best only)" for r in df["dev_per_epoch"]]
    df["init_from"] = df["init_from"].fillna("pretrained")
    cols = ["task", "setting", "init_from", "learning_rate", "epochs", "n_train", "metric", "dev_per_epoch", "best",
            "train_time_s"]
    text = "# Teacher recipe sweep\n\n" + df[cols].sort_values(["task", "setting"]).to_markdown(index=False) + "\n"
    text += "".join(f"\n- {note}" for note in notes) + ("\n" if notes else "")
    if reference is not None and reference.is_file():
        ref = pd.read_csv(reference)
        keep = [c for c in ("task", "split_kind", "main_metric", "value", "best_probe_value", "n_train",
                            "train_time_s") if c in ref]
        text += ("\nThe default run's teachers (the recipe in config/config.yaml, from the teacher table):\n\n"
                 + ref[keep].to_markdown(index=False, floatfmt=".1f") + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", help="a workflow results folder (data/<task>, teacher/<task>)")
    parser.add_argument("--task")
    parser.add_argument("--setting", action="append", default=[], help="NAME:JSON overrides of teacher.*")
    parser.add_argument("--from-run", action="append", default=[], metavar="RESULTS:LABEL",
                        help="import the teachers of a workflow run's results folder as rows labelled LABEL")
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--reference", help="the workflow's teacher table CSV (reference rows in the Markdown)")
    parser.add_argument("--note", action="append", default=[], help="a line under the table (kept in the JSON)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--md", required=True)
    args = parser.parse_args(argv)
    base = config.resolve(yaml.safe_load(Path(args.config).read_text()))
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() else {"benchmark": "teacher_sweep", "runs": []}
    if args.setting and not (args.results and args.task):
        parser.error("--setting needs --results and --task")
    for text in args.from_run:
        results, _, label = text.partition(":")
        for run in imported_runs(Path(results), label):
            report["runs"] = merged(report["runs"], run)
    for text in args.setting:
        name, _, body = text.partition(":")
        run = run_setting(copy.deepcopy(base), args.task, name, json.loads(body), Path(args.results))
        print(json.dumps(run), flush=True)
        report["runs"] = merged(report["runs"], run)
    report["notes"] = [*report.get("notes", []), *(n for n in args.note if n not in report.get("notes", []))]
    report["machine"] = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                         "platform": platform.platform()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    Path(args.md).write_text(markdown(report["runs"], Path(args.reference) if args.reference else None,
                                      report["notes"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
