"""Render config/README.md from the JSON schema, so the key reference never drifts from it.

    python -m adabert.config_doc > config/README.md
"""

from __future__ import annotations

import json

from adabert.config import schema

HEADER = """# Configuration reference

Generated from `workflow/schemas/config.schema.yaml` by `python -m adabert.config_doc`
(a test checks that this file is up to date). Every key has a default; unknown keys are errors.

- `config/config.yaml`: the default run (every GLUE task, sized for a 2-core CPU, offline).
- `config/paper.yaml`: the paper's setting (bert-base-uncased, full data, seq 128, 80 search epochs).
- `.test/config.yaml`: the smoke run used by the tests.

Override single keys on the command line, e.g.
`snakemake --config 'tasks=[RTE]'`, or pass another file with `--configfile my.yaml`
(files are merged over the default key by key). Ablations are entries under `variants`:
each names overrides of the `search` and `loss` sections and becomes a `{variant}` wildcard:

```yaml
variants:
  main: {}
  no_kd: {loss: {gamma: 0.0}}
  no_efficiency: {loss: {beta: 0.0}}
```

| key | type | default | description |
|---|---|---|---|
"""


def _type(sub: dict) -> str:
    if "oneOf" in sub:
        return " or ".join(_type(alt) for alt in sub["oneOf"])
    if "enum" in sub:
        return " \\| ".join(json.dumps(v) for v in sub["enum"])
    t = sub.get("type", "object")
    return " or ".join(t) if isinstance(t, list) else t


def _rows(props: dict, prefix: str = ""):
    for key, sub in props.items():
        name = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub and key not in ("caps",):
            yield name, "object", "", sub.get("description", "")
            yield from _rows(sub["properties"], name + ".")
            continue
        default = json.dumps(sub["default"]) if "default" in sub else ""
        desc = " ".join(str(sub.get("description", "")).split())
        yield name, _type(sub), default, desc


def render() -> str:
    lines = [HEADER.rstrip("\n")]
    for name, typ, default, desc in _rows(schema()["properties"]):
        lines.append(f"| `{name}` | {typ} | `{default}` | {desc} |".replace("``", ""))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
