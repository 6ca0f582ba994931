"""`run.py new-strategy`: the skeleton it writes passes its own tests and check-config, outside the repository.

The tests run in a subprocess whose folder is tmp_path and whose sys.path holds no repository folder: the kit
and the system are imported as the installed package (the suite's venv is an editable install, which maps the
package's top-level packages, not the repository root), exactly as in a strategy author's own repository.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], cwd: Path, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    """A subprocess as a user's shell would start it: no PYTHONPATH, not in the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_skeleton_strategy_and_its_example_test_pass_outside_the_repository(tmp_path: Path) -> None:
    work = tmp_path / "my_strategies"
    written = run([sys.executable, str(ROOT / "run.py"), "new-strategy", "breakout", "--dir", str(work)],
                  cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert (work / "breakout.py").is_file() and (work / "test_breakout.py").is_file()
    assert 'name = "breakout:Breakout"' in written.stdout and f'path = "{work}"' in written.stdout

    # the repository is not what the tests import from: it is on no path of the subprocess
    probe = run([sys.executable, "-c", "import sys, testkit; print(testkit.__file__); print(sys.path)"], cwd=work)
    assert probe.returncode == 0, probe.stderr
    on_path = [Path(p or work).resolve() for p in ast.literal_eval(probe.stdout.splitlines()[1])]
    assert ROOT not in on_path, f"the repository root is on sys.path: {on_path}"

    tested = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(work)], cwd=work)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert "4 passed" in tested.stdout

    # check-config imports the written class and validates its params, with the lines the command printed
    section = written.stdout[written.stdout.index("\n[strategy]\n") + 1:].split("\n\n")[0]
    config = tmp_path / "config.toml"
    config.write_text(section + "\n", encoding="utf-8")
    checked = run([sys.executable, str(ROOT / "run.py"), "check-config", str(config)], cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    config.write_text(section.replace("lookback = 20", "lookback = -1") + "\n", encoding="utf-8")
    refused = run([sys.executable, str(ROOT / "run.py"), "check-config", str(config)], cwd=tmp_path)
    assert refused.returncode == 2 and "strategy.params.lookback: must be >= 1, got -1" in refused.stderr


def test_new_strategy_refuses_to_overwrite_and_to_hide_a_module(tmp_path: Path) -> None:
    (tmp_path / "breakout.py").write_text("# mine\n", encoding="utf-8")
    again = run([sys.executable, str(ROOT / "run.py"), "new-strategy", "breakout", "--dir", str(tmp_path)],
                cwd=tmp_path)
    assert again.returncode == 2 and "already exists: nothing written" in again.stderr
    assert (tmp_path / "breakout.py").read_text(encoding="utf-8") == "# mine\n"
    assert not (tmp_path / "test_breakout.py").exists()
    for bad, says in (("json", "already a module Python imports"), ("Break-Out", "not usable as a module name")):
        refused = run([sys.executable, str(ROOT / "run.py"), "new-strategy", bad, "--dir", str(tmp_path)],
                      cwd=tmp_path)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
