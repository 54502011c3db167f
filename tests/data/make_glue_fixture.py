"""Cut the small GLUE test fixture (tests/data/glue) out of a full local glue_data folder.

Usage: python tests/data/make_glue_fixture.py /path/to/glue_data [--out tests/data/glue]

Every fixture file keeps the source file's header line (CoLA has none) followed by the FIRST ``n`` data
lines of the source file, copied byte for byte: same columns, same quoting, same encoding (the UTF-8 BOM
of the MRPC files included) and the same line ends. Taking the first lines (not a sample) is deterministic
and keeps the rows that tests look at by position (the first CoLA/MRPC/STS-B/MNLI rows, the malformed
first QQP row). The script checks that every class of a classification task occurs in its train file.

Sizes follow the tests' largest needs: MRPC and STS-B 160 train / 80 dev rows (the shared test
configuration caps them at 128 train / 64 dev, and a capped dev split must be smaller than the file);
RTE 128 / 64 (the custom-task test reads 96 / 48 rows); QQP 240 train rows (no dev file, as in the local
copy: tests carve a dev split out of train); the other tasks 64 train / 40 rows per dev file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# task -> [(file, number of data rows)]
FILES: dict[str, list[tuple[str, int]]] = {
    "CoLA": [("train.tsv", 64), ("dev.tsv", 40)],
    "SST-2": [("train.tsv", 64), ("dev.tsv", 40)],
    "MRPC": [("train.tsv", 160), ("dev.tsv", 80)],
    "STS-B": [("train.tsv", 160), ("dev.tsv", 80)],
    "QQP": [("train.tsv", 240)],
    "MNLI": [("train.tsv", 64), ("dev_matched.tsv", 40), ("dev_mismatched.tsv", 40)],
    "QNLI": [("train.tsv", 64), ("dev.tsv", 40)],
    "RTE": [("train.tsv", 128), ("dev.tsv", 64)],
    "WNLI": [("train.tsv", 64), ("dev.tsv", 40)],
}
NO_HEADER = {"CoLA"}
# files copied whole (licence terms that travel with the data)
EXTRA = {"STS-B": ["LICENSE.txt"]}
# (label column: name in the header, or position for header-less files; labels every train file must hold)
CLASSES: dict[str, tuple[str | int, set[str]]] = {
    "CoLA": (1, {"0", "1"}),
    "SST-2": ("label", {"0", "1"}),
    "MRPC": ("Quality", {"0", "1"}),
    "QQP": ("is_duplicate", {"0", "1"}),
    "MNLI": ("gold_label", {"contradiction", "entailment", "neutral"}),
    "QNLI": ("label", {"entailment", "not_entailment"}),
    "RTE": ("label", {"entailment", "not_entailment"}),
    "WNLI": ("label", {"0", "1"}),
}


def cut(source: Path, n: int, header: bool) -> tuple[bytes, int]:
    """The first ``n`` data lines of ``source`` (after its header line when ``header``), byte for byte."""
    lines = source.read_bytes().split(b"\n")
    trailing = lines and lines[-1] == b""
    if trailing:
        lines = lines[:-1]
    keep = lines[: n + (1 if header else 0)]
    n_data = len(keep) - (1 if header else 0)
    if n_data < n:
        raise SystemExit(f"{source}: only {n_data} data lines, {n} wanted")
    return b"\n".join(keep) + b"\n", n_data


def labels_of(data: bytes, task: str) -> set[str]:
    column, _ = CLASSES[task]
    rows = data.decode("utf-8-sig").split("\n")[:-1]
    if isinstance(column, str):
        header, rows = rows[0].split("\t"), rows[1:]
        pos = header.index(column)
    else:
        pos = column
    out = set()
    for row in rows:
        fields = row.split("\t")
        if len(fields) > pos:
            out.add(fields[-1] if task == "MNLI" else fields[pos])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("glue_dir", type=Path, help="a full local GLUE folder in the glue_data layout")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "glue")
    args = parser.parse_args(argv)
    total = 0
    for task, files in FILES.items():
        (args.out / task).mkdir(parents=True, exist_ok=True)
        for name, n in files:
            data, n_data = cut(args.glue_dir / task / name, n, header=task not in NO_HEADER)
            if name == "train.tsv" and task in CLASSES:
                missing = CLASSES[task][1] - labels_of(data, task)
                if missing:
                    raise SystemExit(f"{task}/{name}: the first {n} rows lack class(es) {sorted(missing)}")
            (args.out / task / name).write_bytes(data)
            total += len(data)
            print(f"{task}/{name}: {n_data} rows, {len(data):,} bytes")
        for name in EXTRA.get(task, []):
            data = (args.glue_dir / task / name).read_bytes()
            (args.out / task / name).write_bytes(data)
            total += len(data)
            print(f"{task}/{name}: copied, {len(data):,} bytes")
    print(f"total {total:,} bytes in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
