"""The README's tour is code a newcomer pastes first: it must run as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tour() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    tours = [b for b in blocks if "Lab()" in b]
    assert len(tours) == 1, "the README should hold exactly one tour block using Lab()"
    return tours[0]


def test_readme_tour_runs_from_the_notebooks_folder() -> None:
    code = _tour() + "\nimport json; print('split', json.dumps(df['version'].value_counts().to_dict()))\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "notebooks", capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[IST0101]" in done.stdout
    split = json.loads(re.search(r"split (\{.*\})", done.stdout).group(1))
    assert set(split) == {"v1", "v2"} and sum(split.values()) == 200
    assert split["v2"] < split["v1"]     # 80/20: the seeded spread is checked in test_scenarios


def test_readme_names_lab_members_as_they_are_used() -> None:
    """`lab.x()` in the README's prose is a method of Lab, and `lab.x` a member: a learner who types
    `lab.warnings()` (a property, a list) gets a TypeError."""
    from meshlab import Lab
    text = (ROOT / "README.md").read_text()
    for name, call in re.findall(r"`lab\.([a-z_]+)(\(\))?", text):
        member = getattr(Lab, name, None)
        assert member is not None, f"README names lab.{name}, which Lab does not have"
        if call:
            assert callable(member) and not isinstance(member, property), f"README calls lab.{name}(), not a method"
