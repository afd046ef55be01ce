"""The `kaipiao …` commands that README.md and docs/*.md show, read from their markdown.

Fenced shell blocks (```sh, ```bash, or a bare ``` whose lines start with `kaipiao`) give whole
commands, `\\`-continued lines joined and `# comments` dropped; inline code spans that start with
`kaipiao ` give the commands prose mentions. `.venv/bin/` and leading `NAME=value` settings are
stripped, so each command is keyed by what follows `kaipiao`.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_BLOCK = re.compile(r"^```(sh|bash|shell|console|)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`((?:\.venv/bin/)?kaipiao [a-z][^`]*)`(?!`)")
INVOCATION = re.compile(
    r"(?:^|\$\(|&&\s*|;\s*)\s*(?:[A-Z_]+=\S+\s+)*(?:\.venv/bin/)?(kaipiao\s[^)]*)"
)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def normalise(command: str) -> str:
    command = command.replace(".venv/bin/kaipiao", "kaipiao")
    return " ".join(command.split())


def _from_block(body: str) -> list[str]:
    found = []
    for line in body.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#\s.*$", "", line.strip())  # a trailing comment
        if line.startswith("#"):
            continue
        found += [m.group(1) for m in INVOCATION.finditer(line)]
    return found


def documented_commands() -> dict[str, list[str]]:
    """Each documented command (normalised) → where it is shown (`file:line`)."""
    where: dict[str, list[str]] = {}
    for doc in documents():
        text = doc.read_text()
        spans = [
            (m.start(2), c) for m in SHELL_BLOCK.finditer(text) for c in _from_block(m.group(2))
        ]
        blocks = [(m.start(), m.end()) for m in SHELL_BLOCK.finditer(text)]
        for m in INLINE.finditer(text):
            if not any(a <= m.start() < b for a, b in blocks):
                spans.append((m.start(), m.group(1)))
        for offset, command in spans:
            line = text.count("\n", 0, offset) + 1
            where.setdefault(normalise(command), []).append(f"{doc.relative_to(ROOT)}:{line}")
    return where


def command_path(command: str) -> list[str]:
    """The subcommand words of a command: `kaipiao ledger verify --x 1` → [ledger, verify]."""
    words = shlex.split(command.replace("…", ""))[1:]
    path = []
    for word in words:
        if word.startswith(("-", "[")) or not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        path.append(word)
    return path


def flags(command: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", command))
