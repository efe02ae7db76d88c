"""docs/cli.md is the commands' --help, verbatim, and must agree with it.

`scripts/make_cli_docs.py` runs every Python script under scripts/ with
`--help` at 100 columns and writes the output into
docs/cli.md. These tests fail when a command's --help changed and the page
was not regenerated, or when a script is missing from the page.
"""

import glob
import os
import re
import subprocess
import sys

import pytest

from testing_utils import REPOSITORY
from testing_utils import load_script

pytestmark = pytest.mark.backend_independent

CLI_DOC = os.path.join(REPOSITORY, "docs", "cli.md")

make_cli_docs = load_script("make_cli_docs")


def _committed():
    with open(CLI_DOC, encoding="utf-8") as file:
        return file.read()


def _recorded_python():
    match = re.search(r"with Python (\d+\.\d+)", _committed())
    return match.group(1) if match else None


def _help_block(text, script):
    """The code block under `## <script name>` in a cli.md text."""
    name = re.escape(os.path.basename(script))
    match = re.search(
        rf"^## {name}\n.*?^```text\n(.*?)^```$", text, re.MULTILINE | re.DOTALL
    )
    assert match, f"docs/cli.md has no --help block for {script}"
    return match.group(1)


def _documented_help(script):
    return _help_block(_committed(), script)


def _environment():
    environment = dict(
        os.environ, COLUMNS=str(make_cli_docs.COLUMNS), TF_CPP_MIN_LOG_LEVEL="3"
    )
    # As docs/cli.md says to run them from a checkout.
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [REPOSITORY, environment.get("PYTHONPATH")])
    )
    return environment


def _options(help_text):
    return sorted(set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", help_text)))


def test_every_script_with_a_parser_is_documented():
    # Every Python script under scripts/ is a command with a --help.
    scripts = sorted(
        os.path.relpath(path, REPOSITORY).replace(os.sep, "/")
        for path in glob.glob(os.path.join(REPOSITORY, "scripts", "*.py"))
    )
    documented = sorted(script for script, _ in make_cli_docs.COMMANDS)
    assert scripts == documented, (
        "add the script to COMMANDS in scripts/make_cli_docs.py"
    )


def test_cli_reference_agrees_with_help(tmp_path):
    # Generated in a fresh process: --help lists the registered datasets and
    # models, which other tests of the same pytest run could have added to.
    generated = tmp_path / "cli.md"
    result = subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, "scripts", "make_cli_docs.py"),
         "--output", str(generated)],
        capture_output=True, text=True, env=_environment(), cwd=REPOSITORY,
        timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    current = generated.read_text(encoding="utf-8")
    if _recorded_python() == make_cli_docs.python_version():
        assert _committed() == current, (
            "docs/cli.md and --help disagree: run `python scripts/make_cli_docs.py` "
            "and commit the result"
        )
        return
    # argparse lays --help out differently from one Python version to the
    # next; elsewhere, every command's options must still agree.
    for script, _ in make_cli_docs.COMMANDS:
        assert _options(_help_block(current, script)) == _options(
            _documented_help(script)
        ), f"{script}: options differ from docs/cli.md"


@pytest.mark.parametrize("script", ["scripts/train.py", "scripts/analyze.py"])
def test_help_of_the_real_command_is_the_documented_one(script):
    # What a shell user gets, from a separate process: the in-process capture
    # of the generator must not differ from it.
    if _recorded_python() != make_cli_docs.python_version():
        pytest.skip(f"docs/cli.md was generated with Python {_recorded_python()}")
    environment = _environment()
    result = subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, script), "--help"],
        capture_output=True, text=True, env=environment, cwd=REPOSITORY, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip() + "\n" == _documented_help(script)
