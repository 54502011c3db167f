"""Search stage: joint single-level optimisation of supernet weights and architecture logits.

Loop (spec 2.1/2.2, the authors' PyTorch code, recipe 9.4): per training batch, draw hard
straight-through Gumbel samples of the op per edge and of the depth (tau = max(tau_init *
exp(-tau_decay * epoch), tau_min)), run one forward/backward of the total loss (losses.py), clip the
gradients of weights and alphas separately, then take an SGD step on the weights (momentum, weight
decay, cosine-annealed lr w_lr -> w_lr_min stepped once per epoch) and an Adam step on the alphas
(alpha_lr, alpha_betas, L2 weight decay alpha_weight_decay). No bilevel / unrolled step (neither
authors' code uses one; spec 8.3). Batches are trimmed to their longest sentence (dynamic padding).

After every epoch the current genotype is derived noise-free (derive_genotype) and the supernet is
evaluated on the main eval split with exactly that architecture's one-hot choices (kept edges, depth
K), i.e. the dev metric of the student the derive stage would cut out now. The best epoch (highest dev
metric; ties keep the earlier epoch) decides the saved weights and architecture (both authors' codes
select on dev, spec 2.2). The PyTorch code's eval used a broken argmax (spec 7.1 item 3); fixed here.

Outputs (``out_dir``): ``supernet.safetensors`` (best-epoch weights incl. alphas, hyper-parameters in
the metadata), ``alpha_history.json``, ``metrics.json``, ``op_costs.json``, ``config.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from adabert import io
from adabert.errors import AdabertError
from adabert.nas.costs import cost_vector, op_costs
from adabert.nas.genotype import cell_edges, derive_genotype
from adabert.nas.losses import search_loss
from adabert.nas.supernet import SuperNet

log = logging.getLogger(__name__)

STUDENT_KEYS = ("a_input_ids", "a_attention_mask", "b_input_ids", "b_attention_mask", "labels")
LOSS_KEYS = ("loss", "ce", "kd", "kd_probe", "kd_final", "efficiency", "sampled_depth")


# -- inputs -----------------------------------------------------------------------------------------
def load_split(data_dir: Path, split: str) -> dict[str, torch.Tensor]:
    path = data_dir / f"{split}.safetensors"
    tensors = io.load_tensors(path)
    missing = [k for k in STUDENT_KEYS if k not in tensors]
    if missing:
        raise AdabertError(f"{path}: missing tensor(s) {missing}")
    n = tensors["labels"].shape[0]
    for key in STUDENT_KEYS[:4]:
        if tensors[key].dim() != 2 or tensors[key].shape[0] != n:
            raise AdabertError(f"{path}: tensor '{key}' has shape {list(tensors[key].shape)}, expected [{n}, L]")
    return {k: tensors[k] for k in STUDENT_KEYS}


def load_teacher_embeddings(model_dir: Path) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """The teacher's word table and (if it has one) absolute position table, plus a note.

    Rows 0..L-1 of the position table are used for every sentence (BERT-style absolute positions).
    Models that offset their position ids (RoBERTa starts at padding_idx + 1) are not special-cased;
    a model without an absolute table (rotary / relative positions) gets a random position table.
    """
    from adabert.models import load_encoder

    model = load_encoder(str(model_dir))
    word = model.get_input_embeddings().weight.detach().clone()
    position_module = getattr(getattr(model, "embeddings", None), "position_embeddings", None)
    if isinstance(position_module, torch.nn.Embedding):
        position, note = position_module.weight.detach().clone(), "teacher word and position tables"
    else:
        position, note = None, "teacher has no absolute position table: position table randomly initialised"
        log.warning("%s: %s", model_dir, note)
    del model
    return word, position, note


def trim(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut the padding columns no sentence of the batch uses (a and b keep one common length)."""
    length = int(torch.maximum(batch["a_attention_mask"].sum(1).max(), batch["b_attention_mask"].sum(1).max()))
    length = max(length, 1)
    return {k: (v[:, :length] if k in STUDENT_KEYS[:4] else v) for k, v in batch.items()}


def subsample_indices(n: int, cap: int, data_seed: int) -> torch.Tensor:
    """Sorted indices of the search's training subsample: drawn with the data seed, not the search seed,
    so every search seed sees the same examples and only the search's own randomness differs."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(data_seed))[:cap].sort().values


def tau_at(epoch: int, scfg: dict) -> float:
    return max(scfg["tau_init"] * math.exp(-scfg["tau_decay"] * epoch), scfg["tau_min"])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


# -- evaluation ---------------------------------------------------------------------------------------
@torch.no_grad()
def predict(
    net: SuperNet,
    split: dict[str, torch.Tensor],
    op_weights: torch.Tensor,
    depth_weights: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    """Depth-K logits of the supernet (eval mode) for fixed one-hot choices, [N, C]."""
    was_training = net.training
    net.eval()
    depth = int(torch.argmax(depth_weights)) + 1
    outputs = []
    n = split["labels"].shape[0]
    for start in range(0, n, batch_size):
        batch = trim({k: v[start : start + batch_size] for k, v in split.items()})
        out = net(
            batch["a_input_ids"], batch["a_attention_mask"], batch["b_input_ids"], batch["b_attention_mask"],
            op_weights, depth_weights, "single_path",
        )
        outputs.append(out.depth_logits[depth])
    net.train(was_training)
    return torch.cat(outputs)


# -- the stage ----------------------------------------------------------------------------------------
def run_search(
    cfg: dict,
    task: str,
    seed: int,
    variant: str,
    data_dir: str | os.PathLike,
    teacher_dir: str | os.PathLike,
    probes_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
) -> dict:
    """Run the architecture search for one task / seed / variant; returns the metrics summary."""
    from adabert import metrics as metrics_mod
    from adabert import tasks as tasks_mod

    data_dir, teacher_dir, probes_dir, out_dir = map(Path, (data_dir, teacher_dir, probes_dir, out_dir))
    scfg, lcfg = cfg["search"], cfg["loss"]
    start_time = time.perf_counter()
    io.set_seed(seed)

    # Inputs ------------------------------------------------------------------------------------
    meta = io.read_json(data_dir / "meta.json")
    for key in ("num_labels", "main_split", "type"):
        if key not in meta:
            raise AdabertError(f"{data_dir / 'meta.json'}: missing field '{key}'")
    spec = tasks_mod.spec_from_meta(meta)
    num_labels, main_split = int(meta["num_labels"]), meta["main_split"]
    train = load_split(data_dir, "train")
    dev = load_split(data_dir, main_split)
    n_train = train["labels"].shape[0]

    logits_path = teacher_dir / "logits.safetensors"
    teacher_logits = io.load_tensors(logits_path)
    if "train" not in teacher_logits:
        raise AdabertError(f"{logits_path}: missing tensor 'train'")
    train["teacher_logits"] = teacher_logits["train"].float()
    probe_path = probes_dir / "probe_logits.safetensors"
    probe_logits = io.load_tensors(probe_path)
    if "train" not in probe_logits:
        raise AdabertError(f"{probe_path}: missing tensor 'train'")
    train["teacher_probe_logits"] = probe_logits["train"].float()
    probes_info = io.read_json(probes_dir / "probes.json")
    if train["teacher_logits"].shape != (n_train, num_labels):
        raise AdabertError(
            f"{logits_path}: 'train' has shape {list(train['teacher_logits'].shape)}, expected [{n_train}, {num_labels}]"
        )
    expected_probe = (n_train, int(probes_info.get("num_layers", -1)) + 1, num_labels)
    if tuple(train["teacher_probe_logits"].shape) != expected_probe:
        raise AdabertError(
            f"{probe_path}: 'train' has shape {list(train['teacher_probe_logits'].shape)}, expected "
            f"{list(expected_probe)} (num_layers from probes.json)"
        )
    if meta["type"] == "regression":
        train["labels"] = train["labels"].float()
    cap = scfg.get("max_train_examples")
    if cap is not None and cap < n_train:
        keep = subsample_indices(n_train, cap, int(cfg["data"]["seed"]))
        train = {k: v[keep] for k, v in train.items()}
        log.info("search %s: %d of the %d training examples (search.max_train_examples)", task, cap, n_train)
        n_train = cap

    word, position, embedding_note = load_teacher_embeddings(teacher_dir / "model")
    max_len = max(int(cfg["data"]["max_seq_length"]), train["a_input_ids"].shape[1], dev["a_input_ids"].shape[1])
    if position is not None and position.shape[0] < max_len:
        raise AdabertError(f"{teacher_dir / 'model'}: {position.shape[0]} positions < max_seq_length {max_len}")
    max_positions = position.shape[0] if position is not None else max_len

    # Model, costs, optimisers ------------------------------------------------------------------
    ops = list(scfg["ops"])
    net = SuperNet(
        vocab_size=word.shape[0],
        max_positions=max_positions,
        teacher_dim=word.shape[1],
        num_labels=num_labels,
        width=scfg["width"],
        k_max=scfg["k_max"],
        nodes=scfg["nodes"],
        ops=ops,
        dropout=scfg["dropout"],
        word_embeddings=word,
        position_embeddings=position,
        fixed_depth=scfg.get("fixed_depth"),
    )
    del word, position
    seq_len = int(cfg["data"]["max_seq_length"])
    costs = op_costs(ops, scfg["width"], seq_len, scfg["cost_normalisation"])
    cost_vec = cost_vector(costs, ops)

    weights, arch = net.weight_parameters(), net.arch_parameters()
    w_opt = torch.optim.SGD(weights, lr=scfg["w_lr"], momentum=scfg["w_momentum"], weight_decay=scfg["w_weight_decay"])
    w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=scfg["epochs"], eta_min=scfg["w_lr_min"])
    a_opt = torch.optim.Adam(
        arch, lr=scfg["alpha_lr"], betas=tuple(scfg["alpha_betas"]), weight_decay=scfg["alpha_weight_decay"]
    )
    shuffle = torch.Generator().manual_seed(seed)
    execution, batch_size = scfg["execution"], scfg["batch_size"]

    # Loop --------------------------------------------------------------------------------------
    history, epoch_metrics = [], []
    best = {"epoch": None, "value": -math.inf, "state": None}
    for epoch in range(scfg["epochs"]):
        tau, lr = tau_at(epoch, scfg), w_opt.param_groups[0]["lr"]
        net.train()
        epoch_start = time.perf_counter()
        sums = {k: 0.0 for k in LOSS_KEYS}
        order = torch.randperm(n_train, generator=shuffle)
        steps = range(0, n_train, batch_size)
        bar = tqdm(steps, desc=f"search {task} s{seed} e{epoch}", leave=False, disable=None)
        for begin in bar:
            idx = order[begin : begin + batch_size]
            batch = trim({k: v[idx] for k, v in train.items()})
            op_w, depth_w = net.sample_arch(tau)
            out = net(
                batch["a_input_ids"], batch["a_attention_mask"], batch["b_input_ids"], batch["b_attention_mask"],
                op_w, depth_w, execution,
            )
            parts = search_loss(
                out, batch["labels"], batch["teacher_logits"], batch["teacher_probe_logits"], cost_vec,
                gamma=lcfg["gamma"], beta=lcfg["beta"], temperature=lcfg["temperature"], kd=lcfg["kd"],
            )
            w_opt.zero_grad(set_to_none=True)
            a_opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            torch.nn.utils.clip_grad_norm_(weights, scfg["grad_clip"])
            torch.nn.utils.clip_grad_norm_(arch, scfg["grad_clip"])
            w_opt.step()
            a_opt.step()
            values = {k: float(parts[k].detach()) for k in LOSS_KEYS}
            if not math.isfinite(values["loss"]):
                raise AdabertError(f"search {task} seed {seed}: non-finite loss at epoch {epoch} (diverged)")
            for k in LOSS_KEYS:
                sums[k] += values[k] * idx.numel()
            bar.set_postfix(loss=f"{values['loss']:.3f}", K=int(values["sampled_depth"]))
        w_sched.step()
        train_time = time.perf_counter() - epoch_start

        # Derive the current architecture and evaluate it on the main split.
        genotype = derive_genotype(
            net.alpha_ops, net.alpha_depth, ops, k=2, width=scfg["width"], fixed_depth=net.fixed_depth
        )
        logits = predict(net, dev, genotype.op_weights(ops), genotype.depth_weights(), 2 * batch_size)
        dev_metrics = metrics_mod.compute(spec, logits, dev["labels"])
        dev_main = float(dev_metrics[spec.main_metric])
        history.append(
            {
                "epoch": epoch,
                "tau": tau,
                "alpha_ops": net.alpha_ops.detach().tolist(),
                "alpha_depth": net.alpha_depth.detach().tolist(),
                "softmax_ops": torch.softmax(net.alpha_ops.detach(), -1).tolist(),
                "softmax_depth": torch.softmax(net.alpha_depth.detach(), -1).tolist(),
                "genotype": genotype.to_dict(),
                "dev": dev_metrics,
                "dev_main": dev_main,
            }
        )
        epoch_metrics.append(
            {
                "epoch": epoch,
                "tau": tau,
                "w_lr": lr,
                **{k: sums[k] / n_train for k in LOSS_KEYS},
                "dev": dev_metrics,
                "dev_main": dev_main,
                "depth_derived": genotype.depth,
                "train_time_s": train_time,
                "epoch_time_s": time.perf_counter() - epoch_start,
                "train_examples_per_s": n_train / train_time if train_time > 0 else None,
            }
        )
        log.info("search %s seed %d epoch %d: loss %.4f, dev %s %.2f, K=%d",
                 task, seed, epoch, epoch_metrics[-1]["loss"], spec.main_metric, dev_main, genotype.depth)
        if dev_main > best["value"]:
            best = {"epoch": epoch, "value": dev_main, "state": copy.deepcopy(net.state_dict())}

    # Outputs -----------------------------------------------------------------------------------
    total_time = time.perf_counter() - start_time
    with io.atomic_dir(out_dir) as tmp:  # the folder appears complete or not at all
        io.save_tensors(
            tmp / "supernet.safetensors",
            best["state"],
            metadata={"hparams": json.dumps(net.hparams()), "best_epoch": str(best["epoch"]), "format": "adabert-supernet"},
        )
        io.write_json(
            tmp / "alpha_history.json",
            {
                "task": task,
                "seed": seed,
                "variant": variant,
                "ops": ops,
                "edges": [{"node": j + 2, "input": i} for j, i in cell_edges(scfg["nodes"])],
                "k_max": scfg["k_max"],
                "main_metric": spec.main_metric,
                "best_epoch": best["epoch"],
                "epochs": history,
            },
        )
        summary = {
            "task": task,
            "seed": seed,
            "variant": variant,
            "execution": execution,
            "main_split": main_split,
            "splits": meta.get("splits", {}),  # provenance: official dev, partial copy, or held-out carve-out
            "main_metric": spec.main_metric,
            "best_epoch": best["epoch"],
            "best_dev_main": best["value"],
            "best_genotype": history[best["epoch"]]["genotype"],
            "epochs": epoch_metrics,
            "n_train": n_train,
            "n_dev": int(dev["labels"].shape[0]),
            "supernet_params": int(sum(p.numel() for p in net.weight_parameters())),
            "embedding_init": embedding_note,
            "total_time_s": total_time,
            "train_examples_per_s": n_train * scfg["epochs"] / max(sum(e["train_time_s"] for e in epoch_metrics), 1e-9),
            "peak_rss_mb": _peak_rss_mb(),
            "machine": {
                "platform": platform.platform(),
                "cpu": _cpu_model(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            },
        }
        io.write_json(tmp / "metrics.json", summary)
        io.write_json(
            tmp / "op_costs.json",
            {"width": scfg["width"], "seq_len": seq_len, "normalisation": scfg["cost_normalisation"], "ops": costs},
        )
        io.write_json(tmp / "config.json", cfg)
    return summary
