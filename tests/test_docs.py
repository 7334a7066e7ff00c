"""The docs stay true: the generated settings table is current, every setting is commented in
config.yaml, the README stays short, and relative links point to files (and headings) that exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 260
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _gen():
    spec = importlib.util.spec_from_file_location("gen_config_table", DOCS / "gen_config_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_table_is_current():
    gen = _gen()
    doc = (DOCS / "configuration.md").read_text()
    assert gen.START in doc and gen.END in doc
    current = doc.split(gen.START, 1)[1].split(gen.END, 1)[0].strip("\n")
    assert current == gen.table().strip("\n"), "docs/configuration.md is stale: python docs/gen_config_table.py"


def test_every_setting_is_in_config_yaml_with_a_comment():
    from nailseg.config import Settings

    comments = _gen().yaml_comments()
    keys = [f"{s}.{k}" for s, f in Settings.model_fields.items() for k in f.annotation.model_fields]
    missing = [k for k in keys if k not in comments]
    uncommented = [k for k in keys if k in comments and not comments[k]]
    assert not missing, f"config.yaml lacks {missing}"
    assert not uncommented, f"config.yaml has no comment for {uncommented}"
    unknown = [k for k in comments if "." in k and k not in keys]
    assert not unknown, f"config.yaml has keys the settings do not: {unknown}"


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; details belong in docs/"


def _relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # code blocks hold no links
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def _anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_relative_links_point_to_existing_files():
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), *sorted((ROOT / "bench" / "results").glob("*.md"))]
    broken = []
    for page in pages:
        for target in _relative_links(page):
            file, _, anchor = target.partition("#")
            dest = page.parent / file if file else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
    assert any(_relative_links(ROOT / "README.md")), "the link pattern found no link at all"


def test_the_licence_file_and_the_specs_licence_agree():
    from nailseg.api import openapi

    assert (ROOT / "LICENSE").read_text().split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert openapi.build({}, max_batch_images=4)["info"]["license"] == {"name": "Apache License 2.0",
                                                                        "identifier": "Apache-2.0"}
