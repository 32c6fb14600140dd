"""`.ci/run` reads the README's quick-start commands: the parser, and the real README."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_parser():
    spec = importlib.util.spec_from_file_location(
        "readme_commands", ROOT / ".ci/readme_commands.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rc = _load_parser()

README = """# project

## Install

```bash
echo not this one
```

## Quick start (two commands)

Some words.

```bash
pip install -e . && tool fit typeI --ratio 8       # generate data, train
# a whole-line comment

echo "a # inside quotes" 'and # here' x#y   # trailing
tool run \\
    --flag 1
$ echo prompt
```

```bash
echo second block, ignored
```

## Commands
"""


def test_parser_keeps_commands_verbatim_without_comments():
    assert rc.quick_start_commands(README) == [
        "pip install -e . && tool fit typeI --ratio 8",
        "echo \"a # inside quotes\" 'and # here' x#y",
        "tool run     --flag 1",
        "echo prompt",
    ]


def test_strip_comment_respects_quotes_and_escapes():
    assert rc.strip_comment("a # b") == "a"
    assert rc.strip_comment("# all") == ""
    assert rc.strip_comment("a '#' b # c") == "a '#' b"
    assert rc.strip_comment('a "x # y" b') == 'a "x # y" b'
    assert rc.strip_comment("a \\# b # c") == "a \\# b"
    assert rc.strip_comment("url#frag") == "url#frag"


@pytest.mark.parametrize(
    "text, message",
    [
        ("# p\n\n## Usage\n```bash\nx\n```\n", "no '## Quick start'"),
        ("## Quick start\n\ntext\n\n## Next\n```bash\nx\n```\n", "no fenced bash block"),
        ("## Quick start\n```bash\nx\n", "not closed"),
        ("## Quick start\n```bash\n# only a comment\n```\n", "no command"),
    ],
)
def test_parser_refuses_a_readme_without_commands(text, message):
    with pytest.raises(rc.ReadmeError, match=message):
        rc.quick_start_commands(text)


def test_the_readme_quick_start_is_what_ci_runs():
    commands = rc.quick_start_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) == 2
    assert commands[0].startswith("pip install -e . &&") and "magsr-tf fit" in commands[0]
    assert "pytest" in commands[1]
    out = subprocess.run(
        [sys.executable, str(ROOT / ".ci/readme_commands.py"), str(ROOT / "README.md")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines() == commands


def test_ci_script_runs_the_parsed_commands_in_fresh_venvs():
    script = (ROOT / ".ci/run").read_text()
    assert ".ci/readme_commands.py README.md" in script
    assert '-m venv "$venv"' in script
    assert 'bash -c "$cmd"' in script
    subprocess.run(["bash", "-n", str(ROOT / ".ci/run")], check=True)
