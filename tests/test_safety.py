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


def test_tests_run_offline():
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and os.environ.get("HF_DATASETS_OFFLINE") == "1"
