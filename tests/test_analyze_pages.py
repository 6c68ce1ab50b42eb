"""Every meshlab code (MLB) has a page, reachable from the finding: the sections a learner needs,
Istio's or Envoy's source file named, and YAML that really triggers the code — and a fix that
really clears it — as `meshlab.analyze` judges them (the YAML is read out of the page itself)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from meshlab.analysis import Finding, analyze, format_findings, page
from meshlab.analysis.codes import ISTIO
from meshlab.analysis.mlb_codes import MESHLAB
from meshlab.cli import main
from meshlab.errors import UnknownCode

PAGES = Path(__file__).parents[1] / "meshlab" / "analysis" / "pages"
NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
SECTIONS = ["What it detects", "Why it matters", "What you see", "Triggers", "Fixed", "Related Istio codes",
            "Taught in"]
#: a source file of Istio (pilot/…, pkg/…) or Envoy (source/…, api/envoy/…)
SOURCE_FILE = re.compile(r"`((?:pilot|pkg|source|api/envoy)/[\w./-]+\.(?:go|cc|h|proto))`")


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


def _yaml(section: str) -> str:
    blocks = re.findall(r"^```yaml\n(.*?)^```$", section, flags=re.M | re.S)
    assert len(blocks) == 1, f"expected one ```yaml block, found {len(blocks)}"
    return blocks[0]


def _codes(text: str) -> set[str]:
    return {f.code for f in analyze(text)}


ALL = sorted(MESHLAB)


def test_a_page_for_every_code_and_no_page_for_a_code_that_is_not() -> None:
    assert sorted(p.stem for p in PAGES.glob("*.md")) == ALL
    assert ALL == [f"MLB{n:04d}" for n in range(1, len(ALL) + 1)], "numbers are given in order, none skipped"


@pytest.mark.parametrize("code", ALL)
def test_the_page_has_every_section_in_order(code: str) -> None:
    text = page(code)
    assert text.startswith(f"# {code} · ")
    assert list(_sections(text)) == SECTIONS
    assert text.startswith(f"# {code} · {MESHLAB[code].name}\n\n**{MESHLAB[code].level}**")


@pytest.mark.parametrize("code", ALL)
def test_why_it_matters_names_the_source_that_defines_the_behaviour(code: str) -> None:
    files = SOURCE_FILE.findall(_sections(page(code))["Why it matters"])
    assert files, "name the Istio or Envoy source file (in backquotes) that defines the behaviour"
    if shutil.which("go") is None:
        return
    from _apiserver import module_dir
    from meshlab.backends.kind.config import ISTIO_SOURCE

    istio = module_dir(ISTIO_SOURCE)
    for f in files:
        if f.startswith(("pilot/", "pkg/")):
            assert (istio / f).is_file(), f"{f} is not a file of the pinned Istio"


@pytest.mark.parametrize("code", ALL)
def test_the_triggers_yaml_yields_exactly_that_code_and_the_fixed_yaml_is_clean(code: str) -> None:
    sections = _sections(page(code))
    related = set(re.findall(r"\bIST\d{4}\b", sections["Related Istio codes"]))
    assert related <= set(ISTIO), related - set(ISTIO)
    found = _codes(_yaml(sections["Triggers"]))
    assert code in found
    assert {c for c in found if c.startswith("MLB")} == {code}, found
    assert {c for c in found if c.startswith("IST")} <= related, \
        "an IST code the triggering YAML also yields belongs in 'Related Istio codes'"
    assert _codes(_yaml(sections["Fixed"])) == set()


@pytest.mark.parametrize("code", ALL)
def test_taught_in_names_a_chapter_that_exists(code: str) -> None:
    chapters = re.findall(r"`(notebooks/\d\d-[\w-]+\.ipynb)`", _sections(page(code))["Taught in"])
    assert chapters and all((NOTEBOOKS.parent / c).is_file() for c in chapters), chapters


def test_the_finding_points_to_its_page() -> None:
    text = (PAGES / "MLB0003.md").read_text()
    f = next(f for f in analyze(_yaml(_sections(text)["Triggers"])) if f.code == "MLB0003")
    assert f.page == page("MLB0003") and f.page._repr_markdown_() == str(f.page)
    assert f.to_dict()["page"] == "meshlab explain-code MLB0003"
    assert format_findings([f]).splitlines()[-1] == "    page: meshlab explain-code MLB0003"
    ist = Finding("IST0101", "Error", "VirtualService", "default", "r", "Referenced host not found")
    assert ist.to_dict()["page"] == "" and "istio.io/latest/docs/reference/config/analysis/ist0101/" in ist.page
    assert "    page:" not in format_findings([ist])

    from IPython.lib.pretty import pretty   # what Jupyter shows for a finding, or a list of them

    shown = pretty(f).splitlines()
    assert shown[0] == str(f) and shown[-1] == "    page: .page (or `meshlab explain-code MLB0003`)"
    assert "meshlab explain-code MLB0003" in pretty([f])


def test_an_unknown_code_is_a_clear_error() -> None:
    with pytest.raises(UnknownCode, match="no analysis code 'MLB9999'.*MLB0001"):
        page("MLB9999")
    assert page("mlb0003") == page("MLB0003")


def test_cli_prints_the_page(capsys) -> None:
    assert main(["explain-code", "MLB0003"]) == 0
    assert capsys.readouterr().out == page("MLB0003")
    assert main(["explain-code", "IST0133"]) == 0
    assert "SchemaWarning" in capsys.readouterr().out


def test_cli_unknown_code_exits_65_and_says_why(capsys) -> None:
    assert main(["explain-code", "MLB9999"]) == 65
    out = capsys.readouterr()
    assert out.out == "" and "no analysis code 'MLB9999'" in out.err


def test_analyze_text_and_json_point_to_the_page(tmp_path, capsys) -> None:
    path = tmp_path / "fault.yaml"
    path.write_text(_yaml(_sections((PAGES / "MLB0003.md").read_text())["Triggers"]))
    assert main(["analyze", str(path)]) == 0
    assert "    page: meshlab explain-code MLB0003" in capsys.readouterr().out.splitlines()
    assert main(["analyze", "--json", str(path)]) == 0
    assert [d["page"] for d in json.loads(capsys.readouterr().out)] == ["meshlab explain-code MLB0003"]
