"""meshlab/analysis/codes.py is Istio's own message table, generated (scripts/gen_analysis_codes.py)
from the oracle's `meshlab-oracle messages`, never typed by hand: it must be current."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meshlab.analysis import codes, mlb_codes

REPO = Path(__file__).resolve().parents[1]


def _oracle_or_skip() -> None:
    if shutil.which("go") is None and not (REPO / "oracle" / "bin" / "meshlab-oracle").exists():
        message = "the oracle needs Go (oracle/README.md): codes.py cannot be compared with it here"
        if os.environ.get("CI"):
            pytest.fail(message + "; in CI it must run", pytrace=False)
        pytest.skip(message)
    subprocess.run(["make", "oracle"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def test_codes_py_is_what_the_oracle_says() -> None:
    _oracle_or_skip()
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_analysis_codes.py"), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_check_fails_on_a_hand_edit(tmp_path: Path) -> None:
    """The --check mode can fail: a table differing by one level is refused."""
    saved = tmp_path / "messages.json"
    import json
    table = {"istio": {"module": "istio.io/istio", "version": "v", "commit": codes.ISTIO_COMMIT,
                       "release": codes.ISTIO_RELEASE, "api": "a"},
             "messages": [{"code": c, "level": v.level, "name": v.name, "template": v.template}
                          for c, v in codes.ISTIO.items()]}
    saved.write_text(json.dumps(table))
    gen = [sys.executable, str(REPO / "scripts" / "gen_analysis_codes.py"), "--check", "--from", str(saved)]
    table["messages"][2]["level"] = "Info"
    saved.write_text(json.dumps(table))
    assert subprocess.run(gen, capture_output=True).returncode == 1


def test_every_code_a_rule_reports_is_in_the_tables() -> None:
    used = set()
    for f in (REPO / "meshlab" / "analysis").glob("*.py"):
        used |= set(re.findall(r'"((?:IST|MLB)\d{4})"', f.read_text()))
    assert used, "no codes found in the rules"
    assert used - set(mlb_codes.CODES) == set()
    assert {c.level for c in codes.ISTIO.values()} <= {"Error", "Warning", "Info"}
    assert len(codes.ISTIO) >= 68 and not set(codes.ISTIO) & set(mlb_codes.MESHLAB)
