"""Facts the tests recompute from what the stages saved, independently of the code that wrote them: a metric
from saved outputs and gold labels, a genotype from the search's alpha history, a student's outputs from its
saved folder. A stage that reports a number it did not compute, or saves outputs it did not evaluate, fails
these checks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def read_tsv(path: Path) -> list[dict]:
    """The data rows of a TSV with a header, read as the GLUE files are (tab-separated, quotes literal)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def metric(name: str, outputs, gold) -> float:
    """``name`` in percent points, computed here with numpy/scipy: outputs are ``[N, C]`` logits (argmax)
    or ``[N]``/``[N, 1]`` scores; gold are class indices or scores."""
    from scipy import stats

    outputs, gold = np.asarray(outputs, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if name in ("pearson", "spearman"):
        scores = outputs.reshape(len(gold))
        value = np.corrcoef(scores, gold)[0, 1] if name == "pearson" else stats.spearmanr(scores, gold).statistic
        return 100.0 * float(value)
    pred, gold = outputs.argmax(axis=1), gold.astype(int)
    if name == "accuracy":
        return 100.0 * float((pred == gold).mean())
    if name == "f1":  # F1 of class 1 (binary tasks)
        tp, fp, fn = (int(((pred == 1) & (gold == 1)).sum()), int(((pred == 1) & (gold == 0)).sum()),
                      int(((pred == 0) & (gold == 1)).sum()))
        return 100.0 * 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    raise ValueError(name)


def check_predictions_file(model_dir: Path, data_dir: Path, split: str = "dev") -> dict[str, float]:
    """``model_dir/predictions_{split}.jsonl`` holds the rows of the data folder's split in order with their
    gold labels; every metric its ``metrics.json`` reports for the split recomputes from the saved outputs.
    Returns the recomputed metrics."""
    meta = json.loads((data_dir / "meta.json").read_text())
    rows, data_rows = read_jsonl(model_dir / f"predictions_{split}.jsonl"), read_jsonl(data_dir / f"{split}.jsonl")
    assert [r["idx"] for r in rows] == [r["idx"] for r in data_rows]
    reported = json.loads((model_dir / "metrics.json").read_text())["eval"][split]
    if meta["type"] == "regression":
        outputs, gold = [r["score"] for r in rows], [r["label"] for r in data_rows]
        assert [r["label"] for r in rows] == pytest.approx(gold)
    else:
        outputs, gold = [r["logits"] for r in rows], [r["label"] for r in data_rows]
        assert [r["label_index"] for r in rows] == gold
        assert [r["label"] for r in rows] == [meta["label_names"][g] for g in gold]
        assert [r["prediction_index"] for r in rows] == [int(np.argmax(o)) for o in outputs]
    recomputed = {name: metric(name, outputs, gold) for name in reported}
    assert reported == pytest.approx(recomputed, abs=1e-3)
    return recomputed


def student_reproduces_its_predictions(model_dir: Path, data_dir: Path, split: str = "dev") -> None:
    """The saved student (loaded as ``python -m adabert predict`` loads it) gives the saved outputs."""
    import torch

    from adabert.artifacts import read_data
    from adabert.batching import STUDENT_INPUTS
    from adabert.predict import load_deployable, predict_inputs

    dep = load_deployable(model_dir)
    inputs = read_data(data_dir).split(split, STUDENT_INPUTS)
    logits = predict_inputs(dep.model, {k: v for k, v in inputs.items() if k != "labels"})
    rows = read_jsonl(model_dir / f"predictions_{split}.jsonl")
    saved = torch.tensor([[r["score"]] if "score" in r else r["logits"] for r in rows])
    torch.testing.assert_close(logits.float(), saved.float(), atol=1e-4, rtol=1e-4)


def genotype_from_history(search_dir: Path, fixed_depth: int | None = None, keep: int = 2) -> dict:
    """The architecture the best round's alphas of ``alpha_history.json`` select: depth = argmax of the depth
    logits + 1, and per node the ``keep`` inputs whose best non-'none' op is most probable (ties: the lower
    input), each with that op. Returns ``{"depth": K, "nodes": [[[input, op], ...], ...]}``."""
    import torch

    history = json.loads((search_dir / "alpha_history.json").read_text())
    entry = next(e for e in history["epochs"] if e["epoch"] == history["best_epoch"])
    ops = history["ops"]
    probs = torch.softmax(torch.tensor(entry["alpha_ops"], dtype=torch.float32), -1)  # float32, as saved
    depth = fixed_depth if fixed_depth is not None else int(np.argmax(entry["alpha_depth"])) + 1
    nodes: dict[int, list[tuple[float, int, str]]] = {}
    for row, edge in enumerate(history["edges"]):
        best_p, best_op = max(((float(probs[row, o]), -o) for o, name in enumerate(ops) if name != "none"))
        nodes.setdefault(edge["node"], []).append((best_p, edge["input"], ops[-best_op]))
    kept = []
    for node in sorted(nodes):
        ranked = sorted(nodes[node], key=lambda s: (-s[0], s[1]))[:keep]
        kept.append([[i, op] for _, i, op in sorted(ranked, key=lambda s: s[1])])
    return {"depth": depth, "nodes": kept, "best_epoch": history["best_epoch"], "entry": entry}


def check_derived_genotype(search_dir: Path, derive_dir: Path, fixed_depth: int | None = None) -> dict:
    """The derive folder's genotype is the one the search's best round selects (see genotype_from_history)."""
    expected = genotype_from_history(search_dir, fixed_depth)
    genotype = json.loads((derive_dir / "genotype.json").read_text())
    assert genotype["depth"] == expected["depth"]
    edges = [[[e["input"], e["op"]] if isinstance(e, dict) else list(e) for e in node] for node in genotype["nodes"]]
    assert edges == expected["nodes"]
    derived = json.loads((derive_dir / "derive.json").read_text())
    assert derived["best_epoch"] == expected["best_epoch"]
    assert derived["dev_main"] == pytest.approx(expected["entry"]["dev_main"])
    return genotype


def check_teacher_metrics(teacher_dir: Path, data_dir: Path) -> dict[str, dict[str, float]]:
    """Every eval split's metrics in the teacher's ``metrics.json`` recompute from its saved logits
    (``logits.safetensors``) and the data folder's gold labels. Returns the recomputed metrics."""
    from adabert import io

    logits = io.load_tensors(teacher_dir / "logits.safetensors")
    reported = json.loads((teacher_dir / "metrics.json").read_text())["eval"]
    recomputed = {}
    for split, values in reported.items():
        gold = [r["label"] for r in read_jsonl(data_dir / f"{split}.jsonl")]
        recomputed[split] = {name: metric(name, logits[split].double().numpy(), gold) for name in values}
        assert values == pytest.approx(recomputed[split], abs=1e-3), split
    return recomputed
