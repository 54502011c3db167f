"""The shared training loop (adabert.training), the objective (adabert.distill) and the batching helpers."""

from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adabert import batching, training
from adabert.distill import Objective, kd_loss, teacher_layer
from adabert.errors import AdabertError
from adabert.tasks import get_task

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def toy_task(n: int = 64, seed: int = 0) -> tuple[dict, dict]:
    """A linearly separable 2-class problem: label = (x0 > 0)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    labels = (x[:, 0] > 0).long()
    return {"x": x, "labels": labels}, {"dev": {"x": x[:32], "labels": labels[:32]}}


def step(model, batch):
    return {"loss": F.cross_entropy(model(batch["x"]), batch["labels"])}


def predict(model, split):
    model.eval()
    with torch.no_grad():
        return model(split["x"])


def run_fit(recipe: training.Recipe, seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(4, 2)
    train, evals = toy_task()
    record = training.fit(model, train=train, evals=evals, spec=get_task("SST-2"), main_split="dev", step=step,
                          predict=predict, recipe=recipe, label="toy", device=torch.device("cpu"))
    return model, record


def test_fit_learns_and_restores_the_best_epoch():
    model, record = run_fit(training.Recipe(epochs=4, batch_size=8, learning_rate=0.1, seed=1))
    values = [h["main_value"] for h in record["history"]]
    assert record["main_value"] == max(values) and values.index(max(values)) == record["best_epoch"]
    assert record["main_value"] >= 90.0  # separable: far above the 50% majority class
    assert record["steps"] == 4 * 8 and record["examples_seen"] == 4 * 64
    # the restored weights are the best epoch's: predicting again gives its metric
    acc = float((predict(model, toy_task()[1]["dev"]).argmax(1) == toy_task()[1]["dev"]["labels"]).float().mean())
    assert 100 * acc == pytest.approx(record["main_value"])


def test_select_final_evaluates_once_and_keeps_the_last_weights():
    calls = []

    def counting_predict(model, split):
        calls.append(1)
        return predict(model, split)

    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    train, evals = toy_task()
    record = training.fit(model, train=train, evals=evals, spec=get_task("SST-2"), main_split="dev", step=step,
                          predict=counting_predict, recipe=training.Recipe(epochs=3, batch_size=8, learning_rate=0.1,
                                                                           seed=1, select="final"),
                          label="toy", device=torch.device("cpu"))
    assert len(calls) == 1 and record["best_epoch"] == 2 and record["select"] == "final"
    assert [("eval" in h) for h in record["history"]] == [False, False, True]
    # the same seed with "best" trains the same weights: its last epoch's metric is the final one
    _, best = run_fit(training.Recipe(epochs=3, batch_size=8, learning_rate=0.1, seed=1))
    assert best["history"][-1]["main_value"] == record["main_value"] and len(best["history"]) == 3
    with pytest.raises(AdabertError, match="select"):
        run_fit(training.Recipe(epochs=1, batch_size=8, learning_rate=0.1, select="last"))


def test_fit_keeps_the_best_epochs_extra_outputs():
    """A predict that returns (logits, extra): the record keeps the extra of the epoch it restores (here
    the middle one), not the last epoch's; the teacher's dev probe inputs come from there."""
    calls = []

    def predict_with_extra(model, split):
        epoch = len(calls)
        calls.append(epoch)
        right = F.one_hot(split["labels"], 2).float()
        logits = right if epoch == 1 else 1 - right  # only the middle epoch is correct
        return logits, torch.full((split["labels"].shape[0], 3), float(epoch))

    torch.manual_seed(0)
    train, evals = toy_task()
    record = training.fit(nn.Linear(4, 2), train=train, evals=evals, spec=get_task("SST-2"), main_split="dev",
                          step=step, predict=predict_with_extra, recipe=training.Recipe(epochs=3, batch_size=8,
                                                                                        learning_rate=0.1),
                          label="toy", device=torch.device("cpu"))
    assert record["best_epoch"] == 1 and record["main_value"] == 100.0 and calls == [0, 1, 2]
    logits, extra = record["outputs"]["dev"]
    assert torch.equal(record["logits"]["dev"], logits)
    assert torch.equal(logits, F.one_hot(evals["dev"]["labels"], 2).float())
    assert extra.shape == (32, 3) and bool((extra == 1.0).all())


def test_adamw_fuses_where_it_can_and_updates_as_the_loop_does():
    torch.manual_seed(0)
    loop_model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    fused_model = copy.deepcopy(loop_model)
    groups = lambda m: training.param_groups([m], 0.01)  # noqa: E731
    fused = training.adamw(groups(fused_model), lr=0.05)
    loop = torch.optim.AdamW(groups(loop_model), lr=0.05, fused=False)
    assert fused.defaults["fused"] is True and not loop.defaults["fused"]
    x = torch.randn(16, 4)
    for _ in range(5):
        for model, opt in ((loop_model, loop), (fused_model, fused)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(loop_model.parameters(), fused_model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    # float64 parameters (or no parameters at all) keep the loop
    assert not training.adamw([{"params": list(nn.Linear(2, 2).double().parameters())}], lr=0.1).defaults["fused"]
    assert not training.fusable([])


def test_fit_is_deterministic_and_the_seed_matters():
    _, a = run_fit(training.Recipe(epochs=2, batch_size=8, learning_rate=0.05, seed=3))
    _, b = run_fit(training.Recipe(epochs=2, batch_size=8, learning_rate=0.05, seed=3))
    _, c = run_fit(training.Recipe(epochs=2, batch_size=8, learning_rate=0.05, seed=4))
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert [h["loss"] for h in a["history"]] != [h["loss"] for h in c["history"]]


def test_fractional_epochs_and_the_order_hook():
    seen: list[int] = []

    def order(n, batch_size, generator, steps):
        for idx in batching.shuffled_batches(n, batch_size, generator, steps):
            seen.append(int(idx.numel()))
            yield idx

    _, record = run_fit(training.Recipe(epochs=1.5, batch_size=16, learning_rate=0.1, order=order))
    assert training.epoch_steps(64, 16, 1.5) == [4, 2] and len(seen) == 6 == record["steps"]
    assert record["examples_seen"] == 96 and len(record["history"]) == 2


def test_round_steps_caps_the_total_and_spreads_it_over_the_rounds():
    assert training.round_steps(64, 16, 2) == [4, 4]
    assert training.round_steps(64, 16, 2, max_steps=100) == [4, 4]  # under the cap: full passes
    assert training.round_steps(64, 16, 3, max_steps=7) == [3, 2, 2]
    assert training.round_steps(64, 16, 3, max_steps=2) == [1, 1]  # fewer steps than rounds: fewer rounds
    with pytest.raises(AdabertError, match="max_steps"):
        training.round_steps(64, 16, 3, max_steps=0)


def test_max_steps_caps_training_and_batches_run_on_across_rounds():
    batches: list[list[int]] = []

    def order(n, batch_size, generator, steps):
        for idx in batching.shuffled_batches(n, batch_size, generator, steps):
            batches.append(idx.tolist())
            yield idx

    _, record = run_fit(training.Recipe(epochs=4, batch_size=16, learning_rate=0.1, order=order, max_steps=6))
    assert record["steps"] == 6 == len(batches) and len(record["history"]) == 4  # rounds of 2, 2, 1, 1 steps
    assert record["examples_seen"] == 96 and record["passes"] == 1.5 and record["max_steps"] == 6
    # rounds 1 and 2 are one pass over the 64 rows (no fresh shuffle at a round boundary)
    assert sorted(sum(batches[:4], [])) == list(range(64))


def test_row_lengths_and_length_grouped_batches_cover_every_row_once():
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]])
    data = {"a_attention_mask": mask, "b_attention_mask": mask.flip(0)}
    assert batching.row_lengths(data).tolist() == [3, 4, 4, 3]
    with pytest.raises(AdabertError, match="attention mask"):
        batching.row_lengths({"labels": torch.zeros(4)})
    lengths = torch.randint(1, 60, (200,), generator=torch.Generator().manual_seed(0))
    order = batching.length_grouped_batches(lengths, chunk_batches=5)
    batches = list(order(200, 8, torch.Generator().manual_seed(1), None))
    assert sorted(torch.cat(batches).tolist()) == list(range(200))
    spread = sum(float(lengths[b].max() - lengths[b].min()) for b in batches) / len(batches)
    shuffled = list(batching.shuffled_batches(200, 8, torch.Generator().manual_seed(1)))
    assert spread < 0.5 * sum(float(lengths[b].max() - lengths[b].min()) for b in shuffled) / len(shuffled)


def test_bf16_autocast_trains_and_fp32_is_untouched():
    _, record = run_fit(training.Recipe(epochs=3, batch_size=8, learning_rate=0.1, precision="bf16"))
    assert record["main_value"] >= 85.0
    assert isinstance(training.autocast("fp32", torch.device("cpu")), contextlib.nullcontext)
    assert training.autocast("bf16", torch.device("cpu")).fast_dtype == torch.bfloat16
    with pytest.raises(AdabertError, match="precision"):
        training.autocast("fp8", torch.device("cpu"))


def test_schedules_known_values():
    cosine = training.warmup_cosine(10, 2)
    assert [cosine(s) for s in (0, 1)] == [1 / 3, 2 / 3]
    assert cosine(2) == 1.0 and cosine(10) == pytest.approx(0.0, abs=1e-12)
    assert cosine(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    linear = training.warmup_linear(10, 2)
    assert [linear(s) for s in (0, 1, 2, 6, 10, 12)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]


def test_diverging_training_is_an_error_naming_the_run():
    train, evals = toy_task()
    diverging = lambda m, b: {"loss": m(b["x"]).sum() * float("inf")}  # noqa: E731
    with pytest.raises(AdabertError, match="toy: non-finite loss at epoch 0"):
        training.fit(nn.Linear(4, 2), train=train, evals=evals, spec=get_task("SST-2"), main_split="dev",
                     step=diverging, predict=predict, recipe=training.Recipe(epochs=1, batch_size=8, learning_rate=0.1),
                     label="toy", device=torch.device("cpu"))


def test_select_best_ties_keep_the_earlier_epoch():
    best = training.select_best(None, 0, 50.0, state="a")
    best = training.select_best(best, 1, 50.0, state="b")
    assert best["epoch"] == 0 and best["state"] == "a"
    assert training.select_best(best, 2, 50.5)["epoch"] == 2


def test_trim_uses_every_mask_and_keeps_other_tensors():
    a = torch.tensor([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    b = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    batch = {"a_input_ids": a * 5, "a_attention_mask": a, "b_input_ids": b * 5, "b_attention_mask": b,
             "teacher_probe_logits": torch.zeros(2, 7, 2), "labels": torch.tensor([0, 1])}
    out = batching.trim(batch)
    assert out["a_input_ids"].shape == (2, 3) == out["b_attention_mask"].shape
    assert out["teacher_probe_logits"].shape == (2, 7, 2)
    with pytest.raises(AdabertError, match="attention mask"):
        batching.trim({"labels": torch.zeros(2)})


def test_batched_outputs_restore_row_order():
    mask = torch.tensor([[1, 0, 0], [1, 1, 1], [1, 1, 0]])
    data = {"input_ids": torch.tensor([[1, 0, 0], [2, 2, 2], [3, 3, 0]]), "attention_mask": mask,
            "token_type_ids": torch.zeros(3, 3, dtype=torch.long)}
    out = batching.batched_outputs(lambda b: b["input_ids"][:, :1].float() * 10 + b["input_ids"].shape[1], data,
                                   batch_size=2, device=torch.device("cpu"), desc="t")
    # row order restored; each row saw its batch's trimmed length (rows 1, 2 together: 3; row 0 alone: 1)
    assert out[:, 0].tolist() == [11.0, 23.0, 33.0]
    # student inputs: sorted by the longer of the two sentences (row 0's second sentence is the longest)
    a = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]])
    b = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]])
    pair = {"a_input_ids": a * torch.tensor([[1], [2], [3]]), "a_attention_mask": a, "b_input_ids": b,
            "b_attention_mask": b}
    out = batching.batched_outputs(lambda x: x["a_input_ids"][:, :1].float() * 10 + x["b_input_ids"].shape[1], pair,
                                   batch_size=2, device=torch.device("cpu"), desc="t", keys=batching.STUDENT_INPUTS)
    assert out[:, 0].tolist() == [14.0, 24.0, 32.0]  # rows 0, 1 together (width 4), row 2 alone (width 2)


def test_probe_kd_known_answer():
    labels = torch.tensor([0, 1])
    objective = Objective(labels, regression=False, temperature=1.0)
    teacher_probes = torch.tensor([[[2.0, 0.0], [0.0, 0.0], [3.0, -3.0]],
                                   [[0.0, 2.0], [0.0, 0.0], [-3.0, 3.0]]])  # [B, L_T + 1 = 3, C]
    layer_logits = [torch.zeros(2, 2), torch.zeros(2, 2)]  # student depth 1: layers 0 and 1
    assert [teacher_layer(i, 1, 2) for i in (0, 1)] == [0, 2]
    quality = torch.stack([F.cross_entropy(teacher_probes[:, m], labels) for m in (0, 2)])
    weights = torch.softmax(-quality, 0)
    terms = torch.stack([objective.distill(layer_logits[i], teacher_probes[:, m]) for i, m in enumerate((0, 2))])
    parts = kd_loss(objective, torch.zeros(2, 2), kd="probe+final", gamma=0.8, teacher_logits=teacher_probes[:, 2],
                    layer_logits=layer_logits, teacher_probe_logits=teacher_probes)
    assert float(parts["kd_probe"]) == pytest.approx(float((weights * terms).sum()))
    assert weights[1] > weights[0]  # the better teacher probe (layer 2) gets more weight
    assert float(parts["kd"]) == pytest.approx(0.5 * float(parts["kd_probe"]) + 0.5 * float(parts["kd_final"]))
    assert float(parts["loss"]) == pytest.approx(0.2 * float(parts["ce"]) + 0.8 * float(parts["kd"]))
    probe_only = kd_loss(objective, torch.zeros(2, 2), kd="probe", gamma=1.0, layer_logits=layer_logits,
                         teacher_probe_logits=teacher_probes)
    assert float(probe_only["loss"]) == pytest.approx(float(parts["kd_probe"]))
    with pytest.raises(AdabertError, match="kd must be one of"):
        kd_loss(objective, torch.zeros(2, 2), kd="bogus", gamma=0.5)


def test_logit_mse_kd_of_bilstm_soft():
    objective = Objective(torch.tensor([1.0, 3.0]), regression=True, temperature=2.0)
    parts = kd_loss(objective, torch.tensor([[1.0], [2.0]]), kd="mse_logits", gamma=0.5,
                    teacher_logits=torch.tensor([[1.0], [4.0]]))
    assert float(parts["ce"]) == pytest.approx(0.5) and float(parts["kd"]) == pytest.approx(2.0)
    assert float(parts["loss"]) == pytest.approx(1.25)
