"""``python -m adabert <stage>``: one sub-command per pipeline stage.

Each sub-command parses paths, resolves the config and calls one library function; all logic lives
in the library where it is unit-tested. Bad input ends with ``error: <message>`` and exit code 2.

Every handler imports its stage's module when it runs: those modules load torch, transformers or
matplotlib, which ``--help``, a typo or a bad config should not wait for.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from adabert.errors import AdabertError
from adabert.kinds import EXPORT_KINDS, MODEL_KINDS


def _stage_cfg(args: argparse.Namespace, stage: str) -> dict:
    from adabert import config  # lazy: fast CLI start-up

    text = args.config.strip()
    if text.startswith("{"):  # the workflow passes the stage's resolved view as inline JSON
        return config.parse_cli_config(text)
    full = config.parse_cli_config(text)
    if stage == "retrain":  # also the random-architecture and transfer runs
        return config.retrain_config(full, args.task, args.variant)
    return config.stage_config(full, stage, getattr(args, "task", None), getattr(args, "variant", None))


def _prepare(args):
    cfg = _stage_cfg(args, "prepare")  # bad config fails before heavy imports
    from adabert.encode import prepare  # lazy: fast CLI start-up

    prepare(cfg, args.task, Path(args.out))


def _teacher(args):
    cfg = _stage_cfg(args, "teacher")  # bad config fails before heavy imports
    from adabert.teacher import train_teacher  # lazy: fast CLI start-up

    train_teacher(cfg, args.task, Path(args.data), Path(args.out), Path(args.init) if args.init else None)


def _probes(args):
    cfg = _stage_cfg(args, "probes")  # bad config fails before heavy imports
    from adabert.probes import train_probes  # lazy: fast CLI start-up

    train_probes(cfg, args.task, Path(args.data), Path(args.teacher), Path(args.out))


def _augment(args):
    cfg = _stage_cfg(args, "augment")  # bad config fails before heavy imports
    from adabert.augment import run_augment  # lazy: fast CLI start-up

    run_augment(cfg, args.task, Path(args.data), Path(args.teacher), Path(args.probes), Path(args.out))


def _search(args):
    cfg = _stage_cfg(args, "search")  # bad config fails before heavy imports
    from adabert.nas.search import run_search  # lazy: fast CLI start-up

    run_search(cfg, args.task, args.seed, args.variant, Path(args.data),
               Path(args.teacher), Path(args.probes), Path(args.out))


def _derive(args):
    cfg = _stage_cfg(args, "derive")  # bad config fails before heavy imports
    from adabert.nas.derive import run_derive  # lazy: fast CLI start-up

    run_derive(cfg, Path(args.search), Path(args.out))


def _architecture(args):
    cfg = _stage_cfg(args, "random_architecture" if args.kind == "random" else "architecture")  # fails early
    from adabert import architectures  # lazy: fast CLI start-up

    if args.kind in ("random", "fixed") and not args.search:
        raise AdabertError(f"architecture --kind {args.kind} needs --search (the task's main search folder)")
    if args.kind == "random":
        architectures.run_random_architecture(cfg, args.task, args.sample, Path(args.search), Path(args.data),
                                              Path(args.out))
    elif args.kind == "fixed":
        if not args.op:
            raise AdabertError("architecture --kind fixed needs --op (the op of every edge, e.g. skip_connect)")
        architectures.run_fixed_architecture(cfg, args.task, args.op, args.sample, Path(args.search),
                                             Path(args.data), Path(args.out))
    else:
        if not args.genotype or not args.embeddings:
            raise AdabertError("architecture --kind transfer needs --genotype (the source task's genotype.json)"
                               " and --embeddings (a derive folder of the target task)")
        architectures.run_transfer_architecture(cfg, args.task, Path(args.genotype), Path(args.embeddings),
                                                Path(args.data), Path(args.out), seed=args.sample)


def _teacher_table(args):
    from adabert.report.teacher_table import write_teacher_table  # lazy: fast CLI start-up

    write_teacher_table([Path(p) for p in args.teachers], [Path(p) for p in args.probes],
                        Path(args.out_md), Path(args.out_csv),
                        None if args.data is None else [Path(p) for p in args.data])


def _search_table(args):
    from adabert.report.search_table import write_search_table  # lazy: fast CLI start-up

    write_search_table([Path(p) for p in args.derived], Path(args.out_md), Path(args.out_csv))


def _task_adaptivity(args):
    from adabert.report.adaptivity import write_adaptivity  # lazy: fast CLI start-up

    write_adaptivity([Path(p) for p in args.derived], Path(args.out_md), Path(args.out_csv))


def _random_study(args):
    from adabert.report.random_study import write_random_study  # lazy: fast CLI start-up

    write_random_study(Path(args.efficiency), args.main_variant, Path(args.out), engine=args.engine,
                       fixed_metrics=[Path(p) for p in args.fixed or []],
                       side_by_side=[Path(p) for p in args.side_by_side or []])


def _scorecard(args):
    from adabert.report.scorecard import write_scorecard  # lazy: fast CLI start-up

    def path(value):
        return Path(value) if value else None

    write_scorecard(Path(args.targets), Path(args.teacher), Path(args.out), search_csv=path(args.search),
                    adaptivity_csv=path(args.adaptivity), study_csv=path(args.random), cost_csv=path(args.cost),
                    main_variant=args.main_variant)


def _cost_table(args):
    from adabert.report.cost_table import write_cost_table  # lazy: fast CLI start-up

    write_cost_table([Path(p) for p in args.benchmarks], Path(args.out_md), Path(args.out_csv))


def _main_table(args):
    from adabert.report.main_table import write_main_table  # lazy: fast CLI start-up

    write_main_table(Path(args.reported), [Path(p) for p in args.teachers], [Path(p) for p in args.retrained],
                     Path(args.efficiency), Path(args.out), args.main_variant)


def _ablation_table(args):
    from adabert.report.ablation_table import write_ablation_table  # lazy: fast CLI start-up

    try:
        variants = json.loads(args.variants)
    except json.JSONDecodeError as exc:
        raise AdabertError(f"--variants: not valid JSON ({exc})") from None
    write_ablation_table([Path(p) for p in args.results], Path(args.efficiency), variants, args.main_variant,
                         Path(args.out), main_beta=args.main_beta,
                         beta_figure=Path(args.beta_figure) if args.beta_figure else None)


def _transfer_table(args):
    from adabert.report.transfer_table import write_transfer_table  # lazy: fast CLI start-up

    write_transfer_table([Path(p) for p in args.results], Path(args.out))


def _seed_table(args):
    from adabert.report.seed_table import write_seed_table  # lazy: fast CLI start-up

    write_seed_table([Path(p) for p in args.teachers], [Path(p) for p in args.results], args.main_variant,
                     Path(args.out))


def _efficiency_summary(args):
    from adabert.report.efficiency_summary import write_efficiency_summary  # lazy: fast CLI start-up

    write_efficiency_summary(Path(args.efficiency), args.main_variant, Path(args.out))


def _readme_section(args):
    from adabert.report.readme import write_section  # lazy: fast CLI start-up

    write_section(Path(args.main), Path(args.figure), Path(args.measurement), Path(args.out),
                  *(Path(v) if v else None for v in (args.efficiency, args.scorecard, args.cost)))


def _readme(args):
    from adabert.report.readme import update_readme  # lazy: fast CLI start-up

    update_readme(Path(args.readme), Path(args.section))
    print(f"{args.readme}: results section replaced by {args.section}")


def _figures(args):
    from adabert.report.figures import write_figures  # lazy: fast CLI start-up

    paths = write_figures([Path(p) for p in args.derived], [Path(p) for p in args.probes], Path(args.out),
                          Path(args.efficiency) if args.efficiency else None, [Path(p) for p in args.teachers or []],
                          main_variant=args.main_variant)
    print("\n".join(str(p) for p in paths))


def _retrain(args):
    cfg = _stage_cfg(args, "retrain")  # bad config fails before heavy imports
    from adabert.retrain import run_retrain  # lazy: fast CLI start-up

    run_retrain(cfg, args.task, args.variant, args.seed, Path(args.data), Path(args.teacher), Path(args.probes),
                Path(args.derive), Path(args.out))


def _baseline(args):
    cfg = _stage_cfg(args, "baseline")  # bad config fails before heavy imports
    from adabert.baselines import run_baseline  # lazy: fast CLI start-up

    run_baseline(cfg, args.kind, args.task, args.seed, Path(args.data), Path(args.teacher), Path(args.out))


def _check_threads(threads: int) -> None:
    if threads < 1:
        raise AdabertError(f"--threads must be >= 1, got {threads}")


def _thread_env(threads: int) -> None:
    """OpenMP/MKL thread counts for this process: they are read once, when torch is imported, so call it first."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def _export(args):
    cfg = _stage_cfg(args, "measure")  # bad config fails before heavy imports
    if args.threads is not None:
        _check_threads(args.threads)
    from adabert.export import run_export  # lazy: fast CLI start-up

    run_export(cfg, args.task, Path(args.model), Path(args.data), Path(args.out), batch_size=args.batch_size,
               kind=args.kind, threads=args.threads)


def _predict(args):
    from adabert.predict import predict_file  # lazy: fast CLI start-up

    n = predict_file(Path(args.model), Path(args.input), Path(args.output), args.input_format, args.output_format,
                     args.batch_size)
    print(f"{n} predictions written to {args.output}")


MEASURE_ENGINES = ("torch", "torch-fp16", "onnxruntime", "onnxruntime-int8")
MEASURE_DEVICES = ("cpu", "cuda")


def _parse_run(text: str, default_device: str) -> tuple[str, str]:
    """``ENGINE`` (on ``default_device``) or ``ENGINE@DEVICE``."""
    engine, _, device = text.partition("@")
    device = device or default_device
    if engine not in MEASURE_ENGINES or device not in MEASURE_DEVICES:
        raise AdabertError(f"--engines: {text!r} is not ENGINE or ENGINE@DEVICE (engines {', '.join(MEASURE_ENGINES)}; "
                           f"devices {', '.join(MEASURE_DEVICES)})")
    return engine, device


def _parse_shape(text: str) -> tuple[int, int]:
    """``BATCHxSEQ_LEN``, e.g. ``128x128``."""
    batch, sep, seq_len = text.lower().partition("x")
    if not (sep and batch.isdigit() and seq_len.isdigit()):
        raise AdabertError(f"--shapes: {text!r} is not BATCHxSEQ_LEN (e.g. 128x128)")
    return int(batch), int(seq_len)


def _measure_request(args) -> tuple[list[tuple[str, str]], list[tuple[int, int]]]:
    """The (engine, device) runs and (batch, seq_len) shapes of a measure command, and a check of its output."""
    if (args.engine is None) == (args.engines is None):
        raise AdabertError("measure: give --engine ENGINE or --engines ENGINE[@DEVICE] ...")
    runs = ([(args.engine, args.device)] if args.engine else [_parse_run(t, args.device) for t in args.engines])
    if args.shapes is not None and (args.batch is not None or args.seq_len is not None):
        raise AdabertError("measure: give --batch and --seq-len, or --shapes, not both")
    if args.shapes is None and (args.batch is None or args.seq_len is None):
        raise AdabertError("measure: give --batch and --seq-len, or --shapes BATCHxSEQ_LEN ...")
    shapes = [_parse_shape(t) for t in args.shapes] if args.shapes else [(args.batch, args.seq_len)]
    if (args.out is None) == (args.out_dir is None):
        raise AdabertError("measure: give --out FILE (one measurement) or --out-dir DIR")
    if args.out is not None and len(runs) * len(shapes) > 1:
        raise AdabertError(f"measure: --out names one file, but {len(runs) * len(shapes)} measurements were asked "
                           "for; use --out-dir")
    models = args.model or [None]
    if len(models) > 1:
        counts = {"--out-dir": len(args.out_dir or []), "--seed": len(args.seed or [])}
        wrong = [f"{flag} has {n}" for flag, n in counts.items() if n != len(models)]
        wrong += [f"--export-dir has {len(args.export_dir)}"] if args.export_dir and len(args.export_dir) != len(models) else []
        wrong += ["--onnx-dir given"] if args.onnx_dir else []
        if wrong:
            raise AdabertError(f"measure: {len(models)} --model folders need as many --out-dir and --seed values, "
                               f"as many --export-dir values or none, and no --onnx-dir ({'; '.join(wrong)})")
    elif any(len(v or [None]) > 1 for v in (args.out_dir, args.seed, args.export_dir)):
        raise AdabertError("measure: one --model takes one --out-dir, one --seed and one --export-dir")
    if args.onnx_dir is not None and args.export_dir is not None:
        raise AdabertError("measure: --export-dir times the export stage's graphs; --onnx-dir would not be used")
    return runs, shapes


def _measure(args):
    # Threads first: OpenMP/MKL read these once, when torch is imported below.
    _check_threads(args.threads)
    runs, shapes = _measure_request(args)  # a bad request fails before torch loads
    _thread_env(args.threads)
    from adabert.measure.machine import set_threads  # lazy: torch loads after the thread variables

    set_threads(args.threads)
    from adabert.measure.models import measure_each  # lazy: fast CLI start-up

    models = args.model or [None]
    out_dirs = args.out_dir or [None] * len(models)
    seeds = args.seed or [None] * len(models)
    subjects = [{"task": args.task, "variant": args.variant, "seed": seed} for seed in seeds]
    export_dirs = args.export_dir or [None] * len(models)
    records = measure_each(
        args.model_kind, list(zip(models, out_dirs, subjects, export_dirs)), runs, shapes, args.threads,
        num_labels=args.num_labels, min_seconds=args.min_seconds, min_batches=args.min_batches, warmup=args.warmup,
        max_batches=args.max_batches, peak_seconds=args.peak_seconds, repeats=args.repeats, onnx_dir=args.onnx_dir,
        int8_mode=args.int8, data_dir=args.data, calibration_examples=args.calibration_examples,
        references=not args.no_references, warmup_rows=args.warmup_rows)
    if args.out is not None:
        from adabert.io import write_json  # lazy: fast CLI start-up

        write_json(Path(args.out), records[0][0])


def _measure_side_by_side(args):
    _check_threads(args.threads)
    _thread_env(args.threads)
    models, record_dirs = [], {}
    for flag, triples in (("--model", args.model), ("--record", args.record or [])):
        for variant, seed, folder in triples:
            if not seed.isdigit():
                raise AdabertError(f"measure-side-by-side: {flag} {variant} {seed} {folder}: the seed must be a "
                                   "non-negative integer")
            if flag == "--model":
                models.append((variant, int(seed), Path(folder)))
            else:
                record_dirs[(variant, int(seed))] = Path(folder)
    from adabert.measure.side_by_side import time_side_by_side  # lazy: torch loads after the thread variables

    time_side_by_side(args.task, models, args.batch, args.seq_len, args.threads, min_seconds=args.min_seconds,
                      min_batches=args.min_batches, warmup=args.warmup, repeats=args.repeats,
                      out_json=Path(args.out), record_dirs=record_dirs, peak_seconds=args.peak_seconds)


def _efficiency_table(args):
    from adabert.report.efficiency_table import write_efficiency_table  # lazy: fast CLI start-up

    write_efficiency_table([Path(p) for p in args.measurements], [Path(p) for p in args.retrained],
                           [Path(p) for p in args.teachers], [Path(p) for p in (args.exports or [])],
                           Path(args.out_md), Path(args.out_csv))


def _repeatability_table(args):
    from adabert.report.repeatability import write_repeatability_table  # lazy: fast CLI start-up

    write_repeatability_table([Path(p) for p in args.first], [Path(p) for p in args.second], Path(args.out_md),
                              Path(args.out_csv))


# -- the parser: one function per group of sub-commands (in the order ``--help`` lists them) -------------
REQ = {"required": True}
CONFIG = ("--config", {"required": True,
                       "help": "config: a YAML file (validated, defaults filled) or the inline JSON the workflow passes"})
TASK = ("--task", {**REQ, "help": "task name (GLUE or custom)"})
STEM = ("--out", {**REQ, "help": "output stem: writes .md, .tex and .csv"})
MAIN_VARIANT = ("--main-variant", {"default": "main", "help": "the variant reported as AdaBERT"})
RESULTS = ("--results", {"nargs": "+", **REQ, "help": "retrain / baseline metrics.json"})
EFFICIENCY = ("--efficiency", {**REQ, "help": "efficiency.csv of the efficiency table"})
TEACHER_METRICS = ("--teachers", {"nargs": "+", **REQ, "help": "teacher metrics.json"})


def _add(sub, name: str, func, help_: str, *args: tuple[str, dict]) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_)
    for flag, kwargs in args:
        p.add_argument(flag, **kwargs)
    p.set_defaults(func=func)
    return p


def _add_search_stages(sub) -> None:
    """prepare, teacher, probes, augment, search, derive, architecture."""
    _add(sub, "prepare", _prepare, "load, cap and tokenise one task's splits", TASK, CONFIG,
         ("--out", {**REQ, "help": "output folder (data contract)"}))
    _add(sub, "teacher", _teacher, "fine-tune the teacher on one task", TASK, CONFIG, ("--data", REQ), ("--out", REQ),
         ("--init", {"default": None, "help": "a teacher folder to start from (teacher.per_task.<task>.init_from)"}))
    _add(sub, "probes", _probes, "train one linear probe per frozen teacher layer", TASK, CONFIG,
         ("--data", REQ), ("--teacher", REQ), ("--out", REQ))
    _add(sub, "augment", _augment, "TinyBERT-style offline augmentation of the training split (teacher-labelled)",
         TASK, CONFIG, ("--data", REQ), ("--teacher", REQ), ("--probes", REQ), ("--out", REQ))
    _add(sub, "search", _search, "differentiable architecture search for one task/seed/variant", TASK, CONFIG,
         ("--seed", {**REQ, "type": int}), ("--variant", REQ), ("--data", REQ), ("--teacher", REQ),
         ("--probes", REQ), ("--out", REQ))
    _add(sub, "derive", _derive, "derive the genotype and inherited weights from a search", CONFIG,
         ("--search", REQ), ("--out", REQ))
    _add(sub, "architecture", _architecture,
         "a random, fixed one-op or transferred architecture as a derive folder",
         TASK, CONFIG, ("--kind", {**REQ, "choices": ["random", "fixed", "transfer"]}),
         ("--sample", {"type": int, "default": 0, "help": "random: sample index; fixed, transfer: init seed"}),
         ("--op", {"help": "fixed: the op of every edge (baselines.fixed_cells)"}),
         ("--genotype", {"help": "transfer: genotype.json searched on the source task"}),
         ("--search", {"help": "random, fixed: the task's main search folder (its supernet gives the weights)"}),
         ("--embeddings", {"help": "transfer: derive folder of the target task (its embedding tables)"}),
         ("--data", {**REQ, "help": "prepared data of the target task"}), ("--out", REQ))


def _add_report_commands(sub) -> None:
    """The tables, the README section and the figures."""
    _add(sub, "teacher-table", _teacher_table, "table of every task's teacher and probes",
         ("--teachers", {"nargs": "+", **REQ}), ("--probes", {"nargs": "+", **REQ}),
         ("--data", {"nargs": "+", "help": "Data folders (or their meta.json) of the tasks: adds the bootstrap "
                     "interval of the best probe minus the head"}),
         ("--out-md", REQ), ("--out-csv", REQ))
    _add(sub, "search-table", _search_table, "table of searched architectures",
         ("--derived", {"nargs": "+", **REQ}), ("--out-md", REQ), ("--out-csv", REQ))
    _add(sub, "task-adaptivity", _task_adaptivity, "genotype distances within vs across tasks",
         ("--derived", {"nargs": "+", **REQ, "help": "genotype.json of every main search"}),
         ("--out-md", REQ), ("--out-csv", REQ))
    _add(sub, "random-study", _random_study, "searched vs random architectures per task",
         ("--efficiency", {**REQ, "help": "the efficiency table's CSV"}), ("--main-variant", {"default": "main"}),
         ("--engine", {"default": "torch"}),
         ("--fixed", {"nargs": "+", "help": "retrain metrics.json of fixed one-op cells (variant fixed-<op>)"}),
         ("--side-by-side", {"nargs": "+", "help": "side-by-side timings (measure-side-by-side) of the searched and "
                                                   "random students, one per task: the latencies compared"}),
         ("--out", {**REQ, "help": "output stem (.md, .tex, .csv)"}))
    _add(sub, "scorecard", _scorecard, "the run against its targets (paper/targets.yaml), from the run's tables",
         ("--targets", {**REQ, "help": "paper/targets.yaml"}), ("--teacher", {**REQ, "help": "the teacher table's CSV"}),
         ("--search", {"help": "the search table's CSV"}), ("--adaptivity", {"help": "the task-adaptivity CSV"}),
         ("--random", {"help": "the searched-vs-random CSV"}), ("--cost", {"help": "the cost table's CSV"}),
         ("--main-variant", {"default": "main"}), ("--out", {**REQ, "help": "output stem (.md, .tex, .csv)"}))
    _add(sub, "cost-table", _cost_table, "per-stage wall time and peak memory from Snakemake benchmark files",
         ("--benchmarks", {"nargs": "+", **REQ, "help": "folders of benchmark files (<folder>/<stage>/...)"}),
         ("--out-md", REQ), ("--out-csv", REQ))
    _add(sub, "main-table", _main_table, "the paper's reported rows next to this run's teachers and students",
         ("--reported", {**REQ, "help": "paper/reported.yaml"}), TEACHER_METRICS,
         ("--retrained", {"nargs": "+", **REQ, "help": "retrain metrics.json"}), EFFICIENCY, STEM, MAIN_VARIANT)
    _add(sub, "ablation-table", _ablation_table, "every variant's dev metric, depth, size and speed", RESULTS,
         EFFICIENCY, ("--variants", {**REQ, "help": "the config's variants mapping as JSON (describes each row)"}),
         MAIN_VARIANT, STEM, ("--main-beta", {"type": float, "default": 4.0, "help": "loss.beta of the main variant"}),
         ("--beta-figure", {"help": "stem of the beta trade-off figure (.png/.pdf)"}))
    _add(sub, "transfer-table", _transfer_table, "cross-task transfer matrix of the searched genotypes", RESULTS, STEM)
    _add(sub, "seed-table", _seed_table, "mean ± std over seeds of every model", TEACHER_METRICS, RESULTS,
         MAIN_VARIANT, STEM)
    _add(sub, "efficiency-summary", _efficiency_summary,
         "per task: size, throughput and speedup per engine of each model", EFFICIENCY, MAIN_VARIANT, STEM)
    _add(sub, "readme-section", _readme_section, "the README's results section from the main table and speedup figure",
         ("--main", {**REQ, "help": "paper/tables/main.md"}), ("--figure", {**REQ, "help": "paper/figures/speedup.png"}),
         ("--measurement", {**REQ, "help": "a measurement JSON of the run (machine and library versions)"}),
         ("--efficiency", {"default": None, "help": "paper/tables/efficiency.csv (the efficiency summary)"}),
         ("--scorecard", {"default": None, "help": "paper/tables/scorecard.md (the run against its targets)"}),
         ("--cost", {"default": None, "help": "results/tables/cost.csv (cost_jobs.csv is read beside it)"}),
         ("--out", {**REQ, "help": "the section file (its links are relative to its folder)"}))
    _add(sub, "readme", _readme, "replace the README's results section with the generated one",
         ("--readme", {"default": "README.md"}), ("--section", {"default": "paper/README_results.md"}))
    _add(sub, "figures", _figures, "searched cells, search dynamics, teacher probes, speedup and Pareto figures",
         ("--derived", {"nargs": "+", **REQ, "help": "derive folders or their genotype.json"}),
         ("--probes", {"nargs": "+", **REQ, "help": "probes.json files"}),
         ("--efficiency", {"help": "efficiency.csv of the efficiency table (speedup and Pareto figures)"}),
         ("--teachers", {"nargs": "*", "help": "teacher metrics.json (teacher points of the Pareto figure)"}),
         ("--out", {**REQ, "help": "folder for the PNG and PDF files"}), MAIN_VARIANT)


def _add_student_stages(sub) -> None:
    """retrain, baseline, export, predict."""
    _add(sub, "retrain", _retrain, "retrain the derived student with CE + KD; save it deployable", TASK, CONFIG,
         ("--seed", {**REQ, "type": int}), ("--variant", REQ), ("--data", REQ), ("--teacher", REQ),
         ("--probes", REQ), ("--derive", REQ), ("--out", REQ))
    _add(sub, "baseline", _baseline, "train a baseline student (BiLSTM-SOFT or truncated teacher) with KD", TASK,
         CONFIG, ("--kind", {**REQ, "choices": ["bilstm", "truncated"]}), ("--seed", {**REQ, "type": int}),
         ("--data", REQ), ("--teacher", REQ), ("--out", REQ))
    _add(sub, "export", _export, "ONNX export (fp32 + int8) of a retrained student or a teacher, checked on dev", TASK,
         CONFIG, ("--model", {**REQ, "help": "retrained student, teacher or baseline folder"}), ("--data", REQ),
         ("--out", REQ), ("--batch-size", {"type": int, "default": 32, "help": "dev batch size of the checks"}),
         ("--kind", {"choices": list(EXPORT_KINDS), "help": "the model's kind (default: from the folder's files)"}),
         ("--threads", {"type": int, "help": "threads of the export and its dev checks (default: measure.threads, "
                                             "else every core)"}))
    _add(sub, "predict", _predict, "predict a TSV/CSV/JSONL file with a retrained student folder",
         ("--model", {**REQ, "help": "retrained student folder"}),
         ("--input", {**REQ, "help": "TSV, CSV or JSONL with the task's text columns (see student.json)"}),
         ("--output", {**REQ, "help": "predictions, .jsonl or .tsv"}),
         ("--input-format", {"choices": ["tsv", "csv", "jsonl"], "help": "default: from the extension"}),
         ("--output-format", {"choices": ["jsonl", "tsv"], "help": "default: from the extension"}),
         ("--batch-size", {"type": int, "default": 128}))


def _add_measure_commands(sub) -> None:
    """measure, efficiency-table, repeatability-table."""
    _add(sub, "measure", _measure,
         "time one model on its engines, devices and batch shapes (one process); one measurement JSON each",
         ("--model-kind", {**REQ, "choices": list(MODEL_KINDS)}),
         ("--model", {"nargs": "+",
                      "help": "student folder, teacher folder, baseline folder (bilstm, truncated), or (bert-base) "
                              "a local bert-base-uncased folder; omit for the BERT-base architecture with random "
                              "weights. Several folders of one kind are measured one after the other in this "
                              "process (one --out-dir and --seed each)"}),
         ("--engine", {"choices": list(MEASURE_ENGINES),
                       "help": "one engine (torch-fp16: cuda only; onnxruntime-int8: cpu only); or --engines"}),
         ("--engines", {"nargs": "+", "metavar": "ENGINE[@DEVICE]",
                        "help": "several engines measured in one process, each on --device or on the device after @ "
                                "(e.g. torch onnxruntime onnxruntime-int8 torch@cuda); at one shape and device they "
                                "are timed interleaved"}),
         ("--device", {"default": "cpu", "choices": list(MEASURE_DEVICES)}),
         ("--batch", {"type": int}), ("--seq-len", {"type": int}),
         ("--shapes", {"nargs": "+", "metavar": "BATCHxSEQ_LEN",
                       "help": "several batch shapes (e.g. 128x128 1x32) instead of --batch and --seq-len"}),
         ("--threads", {**REQ, "type": int}),
         ("--out", {"help": "the measurement JSON (one engine and shape)"}),
         ("--out-dir", {"nargs": "+", "help": "folder of the measurement JSONs, one per engine, device and shape, "
                                             "named {engine}.{device}.b{batch}.s{seq_len}.json (one per --model)"}),
         ("--num-labels", {"type": int, "default": 2, "help": "bert-base: classifier outputs"}),
         ("--min-seconds", {"type": float, "default": 2.0, "help": "timed work per round (seconds)"}),
         ("--min-batches", {"type": int, "default": 3, "help": "timed batches per round"}),
         ("--repeats", {"type": int, "default": 3, "help": "rounds (median and spread over them)"}),
         ("--warmup", {"type": int, "default": 1}), ("--max-batches", {"type": int, "default": None}),
         ("--warmup-rows", {"type": int, "default": None,
                            "help": "warm-up batches of the timed batch's first N rows (default: the whole batch)"}),
         ("--peak-seconds", {"type": float, "default": 1.0,
                             "help": "GEMM peak measurement per repeat, once per device (0 = skip)"}),
         ("--no-references", {"action": "store_true",
                              "help": "time each engine alone (no same-job references interleaved with it)"}),
         ("--int8", {"default": "auto", "choices": ["static", "dynamic", "auto"],
                     "help": "onnxruntime-int8: static (calibrated QDQ), dynamic, or auto (both timed, faster kept)"}),
         ("--data", {"help": "the task's prepared Data folder: static int8 is calibrated on its training rows "
                             "(default: synthetic rows)"}),
         ("--calibration-examples", {"type": int, "default": 256, "help": "rows calibrating static int8"}),
         ("--onnx-dir", {"help": "keep the exported ONNX graphs here (default: a temporary folder)"}),
         ("--export-dir", {"nargs": "+",
                           "help": "the model's export stage folder: time its ONNX graphs (fp32 verified against "
                                   "PyTorch; the int8 graphs whose dev metrics it reports) instead of exporting "
                                   "and quantising again (one per --model)"}),
         ("--task", {"help": "task the model belongs to (recorded)"}),
         ("--variant", {"help": "variant (recorded)"}),
         ("--seed", {"type": int, "nargs": "+", "help": "seed (recorded; one per --model)"}))
    _add(sub, "measure-side-by-side", _measure_side_by_side,
         "time several students of one task in one process, interleaved round by round (PyTorch, CPU): latencies "
         "comparable across architectures", TASK,
         ("--model", {"nargs": 3, "action": "append", **REQ, "metavar": ("VARIANT", "SEED", "FOLDER"),
                      "help": "a retrained student folder and what it is (repeat the option for each model)"}),
         ("--batch", {**REQ, "type": int}), ("--seq-len", {**REQ, "type": int}), ("--threads", {**REQ, "type": int}),
         ("--min-seconds", {"type": float, "default": 1.0, "help": "timed work per model and round (seconds)"}),
         ("--min-batches", {"type": int, "default": 1, "help": "timed batches per model and round"}),
         ("--repeats", {"type": int, "default": 3, "help": "rounds (median over them)"}),
         ("--warmup", {"type": int, "default": 1}),
         ("--record", {"nargs": 3, "action": "append", "metavar": ("VARIANT", "SEED", "FOLDER"),
                       "help": "also write this timed model's measurement record (as the measure command would, "
                               "engine torch) into FOLDER (repeat the option for each model)"}),
         ("--peak-seconds", {"type": float, "default": 0.0,
                             "help": "GEMM peak measurement of the --record models' fraction_of_peak (0 = skip)"}),
         ("--out", {**REQ, "help": "the JSON of the side-by-side timing"}))
    _add(sub, "efficiency-table", _efficiency_table, "compression, speedup, GFLOP/s and dev metrics of the students",
         ("--measurements", {"nargs": "+", **REQ}),
         ("--retrained", {"nargs": "+", **REQ, "help": "retrain metrics.json"}),
         ("--teachers", {"nargs": "+", **REQ, "help": "teacher metrics.json"}),
         ("--exports", {"nargs": "*", "help": "export.json of the export stage"}),
         ("--out-md", REQ), ("--out-csv", REQ))
    _add(sub, "repeatability-table", _repeatability_table,
         "the same models measured twice in one run: median vs median per engine and shape",
         ("--first", {"nargs": "+", **REQ, "help": "measurement JSONs of the first jobs"}),
         ("--second", {"nargs": "+", **REQ, "help": "measurement JSONs of the second jobs (the same models)"}),
         ("--out-md", REQ), ("--out-csv", REQ))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m adabert", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="stage", required=True)
    _add_search_stages(sub)
    _add_report_commands(sub)
    _add_student_stages(sub)
    _add_measure_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        args.func(args)
    except AdabertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
