"""How many synthetic rows should calibrate the static int8 graph of a model measured without task data?

The measure stage times BERT-base (the architecture, random weights: no dev metric) on ONNX Runtime int8
too, and its static QDQ graph needs calibration batches. Calibration sets the graph's scales and zero
points, not its operators, so the int8 latency should not depend on the number of rows, while the build
time grows with it. This script measures both with the pipeline's own code
(:func:`adabert.measure.quantize.synthetic_calibration`, :func:`adabert.measure.quantize.build_int8`,
:func:`adabert.measure.timing.time_interleaved` with the measure stage's protocol) for each row count,
on one exported fp32 graph. Run it on an idle machine.

Usage:
    python benchmarks/int8_calibration_rows.py --rows 32 256 --out docs/results/int8_calibration_rows.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="bert-base",
                        help="model kind (adabert.kinds; 'student': any saved student folder), default bert-base")
    parser.add_argument("--model", default=None, help="model folder (None: the BERT-base architecture)")
    parser.add_argument("--rows", type=int, nargs="+", default=[32, 256], help="calibration row counts")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from adabert.measure import machine, onnx_export, quantize, timing
    from adabert.measure.models import model_under_test
    from adabert.measure.reference import student_under_test

    machine.set_threads(args.threads)
    mut = student_under_test(args.model) if args.kind == "student" else model_under_test(args.kind, args.model)
    inputs = mut.make_inputs(args.batch, args.seq_len)
    results = []
    with tempfile.TemporaryDirectory(prefix="adabert-calibration-") as tmp:
        fp32 = onnx_export.export_onnx(mut.module, mut.make_inputs(2, 16), Path(tmp) / "model.onnx",
                                       input_names=mut.input_names, output_names=mut.output_names,
                                       dynamic_axes=mut.dynamic_axes)
        for rows in args.rows:
            out_dir = Path(tmp) / f"rows{rows}"
            out_dir.mkdir()
            calibration, info = quantize.synthetic_calibration(mut.make_inputs, rows, args.seq_len)
            start = time.perf_counter()
            graph = quantize.build_int8(fp32, out_dir, "model", "static", calibration)["static"]
            build_s = time.perf_counter() - start
            step, _ = timing.ort_step(graph["path"], inputs, ["CPUExecutionProvider"], args.threads)
            lat = timing.time_interleaved({"int8": step}, args.batch, min_seconds=args.min_seconds, min_batches=1,
                                          warmup=1, repeats=args.repeats)["int8"]
            results.append({"rows": rows, "build_s": build_s, "latency_median_s": lat["median_s"],
                            "latency_round_medians_s": lat["repeat_medians_s"], "calibration": info})
            print(json.dumps(results[-1]), flush=True)
    report = {
        "benchmark": "int8_calibration_rows",
        "question": "static int8 build time and int8 latency against the number of synthetic calibration rows",
        "settings": {"kind": args.kind, "model": args.model, "batch": args.batch, "seq_len": args.seq_len,
                     "threads": args.threads, "min_seconds": args.min_seconds, "repeats": args.repeats,
                     "engine": "onnxruntime-int8 (static QDQ, per-channel weights)"},
        "machine": machine.machine_info(),
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
