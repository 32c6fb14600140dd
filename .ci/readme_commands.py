"""Print the README's quick-start commands, one per line, for `.ci/run`.

CI runs exactly what a new user copies: the commands are read from the first
fenced ``bash`` block under the README's ``## Quick start`` heading, so the
README and CI cannot drift apart. Comments are removed (a ``#`` outside quotes
at the start of a word), lines ending in a backslash are joined, blank lines
dropped; nothing else is changed.

Usage: ``python .ci/readme_commands.py [README.md]``
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HEADING = "## Quick start"


class ReadmeError(Exception):
    """The README has no usable quick-start block."""


def strip_comment(line: str) -> str:
    """``line`` without its shell comment (a ``#`` outside quotes that starts a word)."""
    quote = None
    escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def quick_start_block(text: str) -> list[str]:
    """Lines of the first fenced ``bash``/``sh``/``shell`` block of the quick-start section."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().startswith(HEADING))
    except StopIteration:
        raise ReadmeError(f"no '{HEADING}' heading") from None
    fence = None
    block: list[str] = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if fence is None:
            if re.match(r"^#{1,2} ", stripped):
                break  # the next section began: no block in this one
            match = re.match(r"^(`{3,}|~{3,})\s*(bash|sh|shell|console)?\s*$", stripped)
            if match and match.group(2):
                fence = match.group(1)
            continue
        if stripped.startswith(fence):
            return block
        block.append(line)
    if fence is None:
        raise ReadmeError(f"no fenced bash block under '{HEADING}'")
    raise ReadmeError(f"the bash block under '{HEADING}' is not closed")


def quick_start_commands(text: str) -> list[str]:
    """The quick-start commands of a README's text, comments and blank lines removed.

    Raises:
        ReadmeError: no quick-start section, no bash block in it, or no command.
    """
    commands: list[str] = []
    pending = ""
    for raw in quick_start_block(text):
        line = raw.rstrip()
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1]  # the shell joins a continued line without the backslash
            continue
        command = strip_comment(pending + line).strip()
        pending = ""
        if command.startswith("$ "):  # a console-style prompt is not part of the command
            command = command[2:]
        if command:
            commands.append(command)
    if pending.strip():
        commands.append(strip_comment(pending).strip())
    if not commands:
        raise ReadmeError(f"the bash block under '{HEADING}' holds no command")
    return commands


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "README.md")
    try:
        commands = quick_start_commands(path.read_text(encoding="utf-8"))
    except (OSError, ReadmeError) as exc:
        print(f"Error: {path}: {exc}", file=sys.stderr)
        return 1
    for command in commands:
        print(command)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
