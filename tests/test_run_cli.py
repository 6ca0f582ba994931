"""The command line as a user meets it: the installed `kraken-actors` command, every command the README shows,
default paths, and a reader that goes away (`check-config | head -1`) ending any command quietly."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import run

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
CONSOLE_SCRIPT = Path(sys.executable).with_name("kraken-actors")  # the venv the tests run in (pip install -e .)
COMMAND = re.compile(r"^(?:\.venv/bin/)?kraken-actors(?:\s|$)")


def readme_commands() -> list[str]:
    """Every kraken-actors command line the README shows: in code blocks (also after `&&`) and in inline code."""
    text = README.read_text()
    found: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                part = part.split("#", 1)[0].strip()
                if COMMAND.match(part):
                    found.append(part)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    found.extend(span.strip() for span in re.findall(r"`([^`\n]+)`", prose) if COMMAND.match(span.strip()))
    return found


def subcommand_of(line: str) -> str | None:
    """The subcommand a README command line names (`[run]` is run; only options: None)."""
    for word in shlex.split(line)[1:]:
        word = word.strip("[]")
        if word.startswith("-") or not word:
            continue
        return word.split("|")[0]
    return None


def subcommands() -> set[str]:
    parser = run.build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def test_the_package_installs_the_kraken_actors_command() -> None:
    assert CONSOLE_SCRIPT.exists(), f"{CONSOLE_SCRIPT} is missing: the package must install a console script"
    result = subprocess.run([str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True, timeout=30,
                            cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: kraken-actors ")


def test_the_readme_shows_kraken_actors_and_no_command_that_needs_an_activated_venv() -> None:
    commands = readme_commands()
    assert len(commands) >= 12, commands  # the first command and every line of "Using it"
    assert any(c == ".venv/bin/kraken-actors" for c in commands), "the README's first command runs the script"
    code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", README.read_text(), flags=re.S))
    assert not re.search(r"(?m)(^|&&\s*)python3? run\.py", code), "`python run.py` needs the venv's python"


def test_every_subcommand_the_readme_names_exists_and_answers_help(capsys: pytest.CaptureFixture[str]) -> None:
    known = subcommands()
    named = {sub for sub in map(subcommand_of, readme_commands()) if sub is not None}
    assert {"run", "check-config", "status", "stop", "simulator"} <= named, named
    for sub in sorted(named):
        assert sub in known or sub == "simulator", f"the README shows `kraken-actors {sub}`, which does not exist"
        with pytest.raises(SystemExit) as done:
            run.main([sub, "--help"])
        out = capsys.readouterr().out
        assert done.value.code == 0, sub
        assert out.startswith("usage: "), (sub, out[:200])


def test_the_readme_commands_parse_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """Each control command line of the README, its placeholders filled in, is accepted by the parser."""
    parser = run.build_parser()
    for line in readme_commands():
        sub = subcommand_of(line)
        if sub in (None, "simulator"):
            continue
        words = [w for w in shlex.split(line)[1:] if not (w.startswith("[") or w.endswith("]"))]
        argv = [{"SYMBOL|--all": "BTC/USD:USD", "SYMBOL": "BTC/USD:USD", "PATH": "config.toml"}.get(w, w)
                for w in words]
        parser.parse_args(argv)  # SystemExit(2) on a usage error fails the test


def test_the_default_config_is_the_current_folders_and_paths_in_it_are_relative_to_the_file(
        tmp_path: Path) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (here / "config.toml").write_text((REPO / "config.toml").read_text())
    default = subprocess.run([sys.executable, str(REPO / "run.py"), "check-config"], cwd=here, capture_output=True,
                             text=True, timeout=30)
    assert default.returncode == 0, default.stderr
    assert f"# effective configuration from {here / 'config.toml'}" in default.stdout
    named = subprocess.run([sys.executable, str(REPO / "run.py"), "check-config", str(here / "config.toml")],
                           cwd=elsewhere, capture_output=True, text=True, timeout=30)
    assert named.returncode == 0, named.stderr
    assert f"# database: sqlite:///{here}/storage/trading.db" in named.stdout


@pytest.mark.parametrize("argv", [["check-config"], ["--help"], ["status", "--help"], ["simulator", "--help"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "config.toml").write_text((REPO / "config.toml").read_text())
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` that has already exited: every write meets a closed pipe
    try:
        result = subprocess.run([sys.executable, str(REPO / "run.py"), *argv], cwd=tmp_path, stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.stderr == ""
    assert result.returncode == 0
