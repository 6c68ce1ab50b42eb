"""meshlab._processes: children die with us, and no Python runs between fork and exec."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import pytest

from _pids import survivors
from meshlab._processes import die_with_parent, spawn

pytestmark = pytest.mark.skipif(not shutil.which("setpriv"), reason="needs util-linux setpriv (Linux)")


def test_argv_is_wrapped_by_setpriv_with_the_chosen_signal() -> None:
    argv = die_with_parent(["envoy", "--version"], "TERM")
    assert os.path.basename(argv[0]) == "setpriv"
    assert argv[1:4] == ["--pdeathsig", "TERM", "--"]
    assert argv[-3:] == [str(os.getpid()), "envoy", "--version"]     # the parent checked for, then argv


def test_the_child_runs_the_program_itself_with_its_arguments() -> None:
    out = spawn(["printf", "%s|", "a b", "$HOME"], stdout=subprocess.PIPE, text=True).communicate(timeout=10)[0]
    assert out == "a b|$HOME|"                 # no word splitting or expansion on the way


def test_a_missing_program_raises_file_not_found_like_popen() -> None:
    with pytest.raises(FileNotFoundError):
        spawn(["meshlab-no-such-program"])
    with pytest.raises(FileNotFoundError):
        spawn(["/nonexistent/bin/tool"])


def test_spawning_from_many_threads_at_once_works() -> None:
    """The failure this module exists for: Popen with a preexec_fn, called from a threaded parent,
    sometimes died in the child's after-fork hooks ("release unlocked lock")."""
    procs: list[subprocess.Popen] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            for _ in range(5):
                procs.append(spawn([sys.executable, "-c", "pass"], stdout=subprocess.DEVNULL))
        except BaseException as e:   # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [p.wait(30) for p in procs] == [0] * 40


def test_the_child_dies_when_its_parent_is_killed(tmp_path) -> None:
    """A parent (standing in for a notebook kernel) spawns a long sleeper from a worker thread,
    prints its pid and is SIGKILLed: the sleeper must be gone too."""
    code = ("import subprocess, sys, threading\n"
            "from meshlab._processes import spawn\n"
            "box = []\n"
            "t = threading.Thread(target=lambda: box.append(spawn(['sleep', '60'])))\n"
            "t.start(); t.join()\n"
            "print(box[0].pid, flush=True)\n"
            "sys.stdin.read()\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(child, 0)                      # alive while the parent lives
    parent.kill()
    parent.wait(10)
    if survivors([child]):
        os.kill(child, 9)
        pytest.fail(f"pid {child} outlived its SIGKILLed parent")
