"""read_env_file against real files written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.env_files import read_env_file

WITNESS = "Witness-s3cret-value-4711"
"""A secret on a malformed line; it must never appear in the error."""

EVERY_FORM = r"""# a comment line
   # an indented comment

PLAIN=value
export EXPORTED=from-shell
export	TABBED=tab after export
  SPACED = around the equals sign
EMPTY=
EMPTY_QUOTED=""
SINGLE='literal # not a comment \n no escape'
DOUBLE="line one\nline two\ttab \"quoted\" back\\slash \q kept"
DOUBLE_COMMENT="quoted" # a comment after a quoted value
SINGLE_COMMENT='quoted'   # likewise
INLINE=value # an inline comment
HASH_INSIDE=pa#ss
EQUALS=base64==
URL=postgres://app:pw@db.staging.internal:5432/app?sslmode=require
_UNDERSCORE1=ok
lower_case=ok
export=a variable named export
DUPLICATE=first
DUPLICATE=second
"""


def write(tmp_path: Path, text: str, name: str = ".env", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_every_syntax_form(tmp_path, newline):
    variables = read_env_file(write(tmp_path, EVERY_FORM, newline=newline))
    assert variables == {
        "PLAIN": "value",
        "EXPORTED": "from-shell",
        "TABBED": "tab after export",
        "SPACED": "around the equals sign",
        "EMPTY": "",
        "EMPTY_QUOTED": "",
        "SINGLE": r"literal # not a comment \n no escape",
        "DOUBLE": 'line one\nline two\ttab "quoted" back\\slash \\q kept',
        "DOUBLE_COMMENT": "quoted",
        "SINGLE_COMMENT": "quoted",
        "INLINE": "value",
        "HASH_INSIDE": "pa#ss",
        "EQUALS": "base64==",
        "URL": "postgres://app:pw@db.staging.internal:5432/app?sslmode=require",
        "_UNDERSCORE1": "ok",
        "lower_case": "ok",
        "export": "a variable named export",
        "DUPLICATE": "second",
    }
    assert list(variables)[0] == "PLAIN"


def test_a_byte_order_mark_and_an_empty_file(tmp_path):
    assert read_env_file(write(tmp_path, "\ufeffKEY=value\n")) == {"KEY": "value"}
    assert read_env_file(write(tmp_path, "", name="empty.env")) == {}


@pytest.mark.parametrize(("line", "problem"), [
    (WITNESS, "expected KEY=VALUE"),
    (f"export {WITNESS}", "expected KEY=VALUE"),
    (f"1KEY={WITNESS}", "invalid variable name"),
    (f"MY-KEY={WITNESS}", "invalid variable name"),
    (f"{WITNESS}-x={WITNESS}", "invalid variable name"),
    (f'KEY="{WITNESS}', "unterminated double-quoted value"),
    (f'KEY="{WITNESS}\\"', "unterminated double-quoted value"),
    (f"KEY='{WITNESS}", "unterminated single-quoted value"),
    (f'KEY="{WITNESS}"{WITNESS}', "unexpected text after the closing quote"),
    (f"KEY='a' {WITNESS}", "unexpected text after the closing quote"),
])
def test_a_malformed_line_is_named_without_its_value(tmp_path, line, problem):
    path = write(tmp_path, f"# header\nGOOD=1\n\n{line}\nLATER=2\n")
    with pytest.raises(ValueError) as error:
        read_env_file(path)
    message = str(error.value)
    assert message.startswith(f"{path}: line 4: {problem}")
    assert WITNESS not in message and "s3cret" not in message
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_a_missing_file_is_named(tmp_path):
    path = tmp_path / "staging.env"
    with pytest.raises(FileNotFoundError) as error:
        read_env_file(path)
    assert str(path) in str(error.value)
    assert error.value.filename == str(path)


def test_a_file_that_is_not_utf8_is_named_without_its_content(tmp_path):
    path = tmp_path / "latin1.env"
    path.write_bytes(b"PASSWORD=caf\xe9-" + WITNESS.encode())
    with pytest.raises(ValueError, match="not UTF-8 text") as error:
        read_env_file(path)
    assert str(path) in str(error.value) and WITNESS not in str(error.value)
