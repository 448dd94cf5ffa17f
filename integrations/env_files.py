r"""Dotenv-style configuration files, read for the production-credentials audit.

A file holds one `KEY=VALUE` per line. Supported, as in the usual dotenv readers:

- blank lines and lines starting with `#` are ignored;
- an optional `export ` prefix (so the file can also be sourced by a shell);
- whitespace around the key and around `=` is ignored;
- `'single quoted'` values are taken literally;
- `"double quoted"` values understand `\n`, `\t`, `\r`, `\"` and `\\` (any other
  backslash is kept as written);
- after an unquoted value, whitespace followed by `#` starts a comment (`a#b` keeps its
  `#`); after a quoted value only whitespace or a comment may follow;
- a key given twice keeps its last value, as a shell would.

These files hold secrets, so an error names the file, the line number and what is wrong,
and never the line's text: a malformed line may well be a pasted password.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
"""A variable name: letters, digits and `_`, not starting with a digit."""

_EXPORT = re.compile(r"export[ \t]+")
_INLINE_COMMENT = re.compile(r"\s#")
_AFTER_QUOTE = re.compile(r"\s*(#.*)?\Z")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


class _Malformed(Exception):
    """What is wrong with one line, in words that never quote the line."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def read_env_file(path: Path) -> dict[str, str]:
    """Read the variables of a dotenv-style file (see the module docstring for the syntax).

    Args:
        path: the file, UTF-8 (a leading byte-order mark is allowed).

    Returns:
        The variables by name, in file order.

    Raises:
        FileNotFoundError: the file does not exist (the error names the path).
        ValueError: the file is not UTF-8 text, or a line is malformed; the message is
            `<path>: line <n>: <what is wrong>` and never contains the line's text.
    """
    text = _read_text(path)
    variables: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        try:
            entry = _parse_line(line)
        except _Malformed as error:
            raise ValueError(f"{path}: line {number}: {error.problem}") from None
        if entry is not None:
            key, value = entry
            variables[key] = value
    return variables


def _read_text(path: Path) -> str:
    """The file's text, with errors that name the path and quote nothing from the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "env file not found", str(path)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None


def _parse_line(line: str) -> tuple[str, str] | None:
    """One line as `(key, value)`, or None for a blank or comment line.

    Raises:
        _Malformed: with a description of the problem that does not quote the line.
    """
    text = line.rstrip("\r").strip()
    if not text or text.startswith("#"):
        return None
    if export := _EXPORT.match(text):
        text = text[export.end():]
    key, equals, rest = text.partition("=")
    if not equals:
        raise _Malformed("expected KEY=VALUE")
    key = key.strip()
    if not KEY_PATTERN.match(key):
        raise _Malformed("invalid variable name (letters, digits and _, not starting "
                         "with a digit)")
    return key, _parse_value(rest.lstrip())


def _parse_value(raw: str) -> str:
    """The value after `=`: quoted, or unquoted up to an inline comment."""
    if raw.startswith('"'):
        value, tail = _double_quoted(raw)
    elif raw.startswith("'"):
        close = raw.find("'", 1)
        if close == -1:
            raise _Malformed("unterminated single-quoted value")
        value, tail = raw[1:close], raw[close + 1:]
    else:
        comment = _INLINE_COMMENT.search(raw)
        return (raw[:comment.start()] if comment else raw).rstrip()
    if not _AFTER_QUOTE.match(tail):
        raise _Malformed("unexpected text after the closing quote")
    return value


def _double_quoted(raw: str) -> tuple[str, str]:
    """A double-quoted value with its escapes resolved, and the text after its quote."""
    out: list[str] = []
    i = 1
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw):
            following = raw[i + 1]
            out.append(_ESCAPES.get(following, "\\" + following))
            i += 2
        elif char == '"':
            return "".join(out), raw[i + 1:]
        else:
            out.append(char)
            i += 1
    raise _Malformed("unterminated double-quoted value")
