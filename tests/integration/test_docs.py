"""The documentation keeps up with the code: every module of the library has its place in the
API reference, and every guide is in the site's navigation."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_is_in_the_api_reference():
    pages = "".join(p.read_text() for p in (ROOT / "docs" / "reference").glob("*.md"))
    documented = set(re.findall(r"^::: (geoseg\.[\w.]+)$", pages, flags=re.M))
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "geoseg").rglob("*.py")
               if p.name != "__init__.py" and not p.name.startswith("_") and "plugin" not in p.parts}
    missing = sorted(m for m in modules if m not in documented and m.rsplit(".", 1)[0] not in documented)
    assert not missing, f"not in docs/reference: {missing}"


@pytest.mark.parametrize("guide", sorted(p.name for p in (ROOT / "docs" / "guides").glob("*.md")))
def test_every_guide_is_in_the_navigation(guide):
    assert f"guides/{guide}" in (ROOT / "mkdocs.yml").read_text()
