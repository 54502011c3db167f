"""Speed and size measurement of students, the teacher and BERT-base (PyTorch and ONNX Runtime).

Public API::

    from adabert.measure import (ModelUnderTest, load_teacher, bert_base_architecture, student_under_test,
                                 measure, validate_measurement, MEASUREMENT_SCHEMA)
    mut = bert_base_architecture(num_labels=2)
    record = measure(mut, engine="onnxruntime", device="cpu", batch=128, seq_len=128, threads=2,
                     out_json="results/speed/bert-base.onnxruntime.json", onnx_dir="results/speed/onnx")

Modules: :mod:`.machine` (machine info, threads, GEMM peak), :mod:`.size` (params, bytes, FLOPs),
:mod:`.timing` (the timing protocol: repeated, interleaved rounds), :mod:`.onnx_export` (export, verify,
dynamic int8), :mod:`.quantize` (static int8 calibrated on training rows; the int8 modes), :mod:`.reference`
(model adapters, teacher, BERT-base), :mod:`.run` (the measurements of one model: its engines, devices and
shapes -> one JSON each), :mod:`.models` (the measure stage: a model of any kind of :mod:`adabert.kinds`,
loaded once from its folder and measured on every engine and shape of its job), :mod:`.side_by_side`
(several students of one task timed interleaved in one job: latencies comparable across architectures).
"""

from adabert.measure.machine import machine_info, matmul_peak_gflops, set_threads
from adabert.measure.models import measure_model, measure_models, model_under_test
from adabert.measure.onnx_export import export_onnx, quantize_int8, verify_onnx
from adabert.measure.quantize import (
    INT8_MODES,
    build_int8,
    calibration_from_data,
    quantize_static_int8,
    synthetic_calibration,
)
from adabert.measure.reference import (
    ModelUnderTest,
    bert_base_architecture,
    hf_classifier_under_test,
    load_teacher,
    random_token_inputs,
    student_module_under_test,
    student_under_test,
)
from adabert.measure.run import MEASUREMENT_SCHEMA, measure, measure_many, validate_measurement
from adabert.measure.side_by_side import time_side_by_side
from adabert.measure.size import count_params, flops_per_sample, size_report
from adabert.measure.timing import time_interleaved, time_ort, time_torch

__all__ = [
    "INT8_MODES", "MEASUREMENT_SCHEMA", "build_int8", "calibration_from_data", "quantize_static_int8",
    "synthetic_calibration", "time_interleaved", "ModelUnderTest", "bert_base_architecture", "count_params", "export_onnx",
    "flops_per_sample", "hf_classifier_under_test", "load_teacher", "machine_info", "matmul_peak_gflops",
    "measure", "measure_many", "measure_model", "measure_models", "model_under_test", "quantize_int8",
    "random_token_inputs", "set_threads",
    "size_report", "student_module_under_test", "student_under_test", "time_ort", "time_side_by_side", "time_torch",
    "validate_measurement", "verify_onnx",
]
