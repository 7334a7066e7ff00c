"""Print the settings table of docs/configuration.md: every key of nailseg/config.py's models.

    python docs/gen_config_table.py        # paste between the config-table markers

Key, type (with the bounds the model enforces), default from the pydantic models; the description is
config.yaml's comment on the key's line (config.yaml is the commented reference), else the field's
own ``description``. The simple rule for config.yaml: a line ``<indent><key>: <value>  # <comment>``
under ``unet:`` -> ``<section>:`` (a section at 2 spaces, its keys at 4), or under a top-level section
beside ``unet:`` (``development:``, its keys at 2); the comment is what follows the first `` #`` after
the value. tests/test_docs.py checks that the doc's table is this
output and that every key has a comment in config.yaml.
"""

from __future__ import annotations

import json
import re
import sys
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nailseg.config import TOP_LEVEL_SECTIONS, Settings  # noqa: E402

START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"
_LINE = re.compile(r"^(?P<indent> *)(?P<key>\w+):(?P<rest>.*)$")


def yaml_comments(path: Path = ROOT / "config.yaml") -> dict[str, str]:
    """``{"section.key": comment}`` (and ``{"section": comment}``) from config.yaml's lines."""
    comments: dict[str, str] = {}
    top = section = None
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        indent, key, rest = len(m["indent"]), m["key"], m["rest"]
        comment = rest.split(" #", 1)[1].strip() if " #" in rest else ""
        if indent == 0:
            top = key
            section = key if key in TOP_LEVEL_SECTIONS else None
            if section:
                comments[section] = comment
        elif top in TOP_LEVEL_SECTIONS and indent == 2:
            comments[f"{section}.{key}"] = comment
        elif indent == 2:
            section = key
            comments[section] = comment
        elif indent == 4 and section:
            comments[f"{section}.{key}"] = comment
    return comments


def _type(field: Any) -> str:
    ann = field.annotation
    if typing.get_origin(ann) is typing.Literal:
        return "one of " + ", ".join(f"`{v}`" for v in typing.get_args(ann))
    text = getattr(ann, "__name__", None) if isinstance(ann, type) else None
    text = text or str(ann).replace("pathlib.", "").replace("pydantic.types.", "").replace("typing.", "")
    text = text.replace(" | None", " or null").replace("SecretStr", "key")
    bounds = []
    for meta in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                bounds.append(f"{sign} {getattr(meta, attr)}")
        if getattr(meta, "pattern", None):
            bounds.append(f"matching `{meta.pattern}`")
    return f"`{text}`" + (", " + ", ".join(bounds) if bounds else "")


def _default(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    elif isinstance(value, tuple):
        value = list(value)
    return "`" + json.dumps(value).replace("|", "\\|") + "`"


def table() -> str:
    comments = yaml_comments()
    rows = ["| key | type | default | what |", "|---|---|---|---|"]
    for section, section_field in Settings.model_fields.items():
        for key, field in section_field.annotation.model_fields.items():
            what = comments.get(f"{section}.{key}") or field.description or ""
            rows.append(f"| `{section}.{key}` | {_type(field)} | {_default(field.default)} | "
                        f"{what.replace('|', '/').replace('<', '&lt;')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table())
