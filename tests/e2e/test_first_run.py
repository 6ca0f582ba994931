"""A new user's first run, in a fresh virtual environment: the README's first command as written (paper trading
shows fills, the control commands reach it through `.venv/bin/kraken-actors`), and a non-editable `pip install .`
whose `kraken-actors` works from any folder with the paths resolved as documented.

Each test builds its own venv from a copy of this checkout (about 30 s of pip on 2 cores)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.soak import free_port
from tests.e2e.test_run_paper import Output

REPO = Path(__file__).resolve().parents[2]
PYTHON3 = shutil.which("python3")

pytestmark = [
    pytest.mark.timeout(420),
    pytest.mark.skipif(PYTHON3 is None, reason="no python3 on PATH: the README's commands start with it"),
]


def readme_first_command() -> str:
    """The one line of the README's first sh block (under "The two commands")."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## The two commands"):]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def copy_of_checkout(target: Path) -> Path:
    """The project's files (what git tracks, as they are in the work tree) in `target`, nothing else."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    config = target / "config.toml"
    config.write_text(re.sub(r"(?m)^port = 8765", f"port = {free_port()}", config.read_text()))  # tests: free port
    return target


def clean_env() -> dict[str, str]:
    drop = ("KRAKEN_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def test_the_readmes_first_command_runs_as_written(tmp_path: Path) -> None:
    checkout = copy_of_checkout(tmp_path / "kraken-actors")
    command = readme_first_command()
    assert command.endswith(".venv/bin/kraken-actors"), command
    process = subprocess.Popen(["bash", "-c", command], cwd=checkout, env=clean_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = Output(process)
    try:
        output.wait_for(r"paper mode on the built-in paper simulator", timeout=300)  # pip first
        output.wait_for(r"paused: none", timeout=10)
        output.wait_for(r" filled @ ", timeout=60)
        script = checkout / ".venv" / "bin" / "kraken-actors"
        status = subprocess.run([str(script), "status"], cwd=checkout, env=clean_env(), capture_output=True,
                                text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "BTC/USD:USD" in status.stdout
        read_end, write_end = os.pipe()
        os.close(read_end)  # `status | head -1` whose head has gone: quiet, no traceback
        try:
            piped = subprocess.run([str(script), "status"], cwd=checkout, env=clean_env(), stdout=write_end,
                                   stderr=subprocess.PIPE, text=True, timeout=60)
        finally:
            os.close(write_end)
        assert piped.returncode == 0 and piped.stderr == "", piped.stderr
        stop = subprocess.run([str(script), "stop"], cwd=checkout, env=clean_env(), capture_output=True, text=True,
                              timeout=60)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert process.wait(60) == 0, "\n".join(output.lines[-30:])
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_a_non_editable_install_works_from_any_folder(tmp_path: Path) -> None:
    assert PYTHON3 is not None
    checkout = copy_of_checkout(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([PYTHON3, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(checkout)], env=clean_env(),
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    shutil.rmtree(checkout / "build", ignore_errors=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = str(venv / "bin" / "kraken-actors")

    def cli(*argv: str, cwd: Path = elsewhere) -> subprocess.CompletedProcess[str]:
        return subprocess.run([script, *argv], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import actors, run; print(actors.__file__)"],
                           cwd=elsewhere, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr  # installed, not the checkout's files

    helped = cli("--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: kraken-actors"), helped.stderr

    named = cli("check-config", str(checkout / "config.toml"))
    assert named.returncode == 0, named.stderr
    assert f"# database: sqlite:///{checkout}/storage/trading.db" in named.stdout  # relative to the file

    missing = cli("check-config")  # no config.toml in this folder
    assert missing.returncode == 2 and f"file not found: {elsewhere / 'config.toml'}" in missing.stderr
    assert "Traceback" not in missing.stderr

    connected = cli("check-config", "--connect", cwd=checkout)  # the default: ./config.toml; the simulator installed
    assert connected.returncode == 0, connected.stdout + connected.stderr
    assert "# ok: exchange: the paper simulator lists" in connected.stdout
    assert (checkout / "storage" / "trading.db").exists()
