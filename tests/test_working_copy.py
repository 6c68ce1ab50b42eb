"""course/prepare.py: learners work in a copy of the chapters that follows the course without
losing their edits, and JupyterLab starts without the news pop-up."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("course_prepare", REPO / "course" / "prepare.py")
prepare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prepare)  # type: ignore[union-attr]


def _chapter(path: Path, *sources: str, outputs: bool = False) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    if outputs:
        for i, c in enumerate(nb.cells):
            c.execution_count = i + 1
            c.outputs = [nbformat.v4.new_output("stream", text=f"ran {i}\n")]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_the_copy_follows_the_course_and_keeps_the_learners_edits(tmp_path: Path):
    course, mine = tmp_path / "notebooks", tmp_path / "my-notebooks"
    _chapter(course / "00-a.ipynb", "guess = None", "lab.probe()")
    _chapter(course / "01-b.ipynb", "x = 1")
    (course / "manifests").mkdir()
    (course / "manifests" / "svc.yaml").write_text("kind: Service\n")
    (course / ".ipynb_checkpoints").mkdir()
    (course / ".ipynb_checkpoints" / "00-a-checkpoint.ipynb").write_text("{}")
    done = prepare.working_copy(course, mine, say=lambda _: None)
    assert sorted(done["copied"]) == ["00-a.ipynb", "01-b.ipynb", "manifests/svc.yaml"]
    assert not (mine / ".ipynb_checkpoints").exists()
    tracked = (course / "00-a.ipynb").read_bytes()

    # the learner runs chapter 0 (JupyterLab autosaves outputs) and edits chapter 1
    _chapter(mine / "00-a.ipynb", "guess = None", "lab.probe()", outputs=True)
    _chapter(mine / "01-b.ipynb", "x = 2")
    assert (course / "00-a.ipynb").read_bytes() == tracked        # the course's file is untouched
    assert prepare.working_copy(course, mine, say=lambda _: None) == {"copied": [], "updated": [], "kept": []}

    # git pull: the course changes both chapters and adds one
    _chapter(course / "00-a.ipynb", "guess = None", "lab.probe(n=20)")
    _chapter(course / "01-b.ipynb", "x = 10")
    _chapter(course / "02-c.ipynb", "new")
    said: list[str] = []
    done = prepare.working_copy(course, mine, say=said.append)
    assert done == {"copied": ["02-c.ipynb"], "updated": ["00-a.ipynb"], "kept": ["01-b.ipynb"]}
    assert "lab.probe(n=20)" in (mine / "00-a.ipynb").read_text()     # only outputs were lost
    assert "x = 2" in (mine / "01-b.ipynb").read_text()                # the learner's edit stays
    assert any("kept your edited" in s and "01-b.ipynb" in s for s in said), said
    # renaming their copy away gets them the course's new version
    (mine / "01-b.ipynb").rename(mine / "01-b-mine.ipynb")
    assert prepare.working_copy(course, mine, say=lambda _: None)["copied"] == ["01-b.ipynb"]


def test_the_course_settings_turn_the_news_pop_up_off_and_keep_others(tmp_path: Path):
    target = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
                                  "@jupyterlab/apputils-extension:notification": {"doNotDisturbMode": True}}))
    assert prepare.install_settings(prefix=tmp_path) == target
    merged = json.loads(target.read_text())
    assert merged["@jupyterlab/apputils-extension:notification"] == {
        "doNotDisturbMode": True, "fetchNews": "false", "checkForUpdates": False}
    assert merged["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}


def test_the_course_settings_are_valid_for_jupyterlabs_schema():
    jsonschema = __import__("jsonschema")

    schemas = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"      # where pip put JupyterLab
    ours = json.loads((REPO / "course" / "jupyterlab" / "overrides.json").read_text())
    for plugin, values in ours.items():
        package, name = plugin.rsplit(":", 1)
        schema = json.loads((schemas / package / f"{name}.json").read_text())
        jsonschema.validate(values, schema)
