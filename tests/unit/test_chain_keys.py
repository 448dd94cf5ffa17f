"""Chain keys and anchors given badly: each named precisely, no secret in the message."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import pytest

from changeflow.cli import expected_head
from integrations.anchors import AnchorError, parse_anchor, signed_anchor
from integrations.chain_keys import (
    ChainKeyError,
    ChainKeys,
    check_signature,
    ensure_key_file,
    new_key,
    read_key_file,
)
from tests.support.keys import OTHER_KEYS, TEST_KEY_TEXT, TEST_KEYS

SECRET = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(("text", "words"), [
    ("", "holds no key"),
    ("# only a comment\n", "holds no key"),
    ("no-colon", "key 1 must be ID:SECRET"),
    (f"bad id!:{SECRET}", "key 1 must be ID:SECRET"),
    (f"{'x' * 33}:{SECRET}", "at most 32"),
    ("k1:not*base64", "'k1' must be 32 bytes in base64"),
    (f"k1:{base64.b64encode(bytes(31)).decode()}", "'k1' must be 32 bytes"),
    (f"k1:{base64.b64encode(bytes(33)).decode()}", "'k1' must be 32 bytes"),
    (f"k1:{SECRET},k2:short", "'k2' must be 32 bytes"),
    (f"k1:{SECRET}\nk1:{base64.b64encode(bytes(range(32))).decode()}", "ids repeat: k1, k1"),
])
def test_malformed_keys_are_named(text: str, words: str) -> None:
    with pytest.raises(ChainKeyError) as caught:
        ChainKeys.parse(text, "CHANGEFLOW_CHAIN_KEY")
    message = str(caught.value)
    assert words in message
    assert SECRET not in message and "AAEC" not in message  # never the secret


def test_keys_rotate_the_first_writes_and_all_verify() -> None:
    old = TEST_KEY_TEXT.replace("test-1", "old")
    keys = ChainKeys.parse(f"new:{SECRET}\n# retired next year\n{old}", "file")
    assert keys.current.id == "new"
    assert keys.mac("h", "old") == TEST_KEYS.mac("h") != keys.mac("h")
    with pytest.raises(ChainKeyError, match="unknown chain key 'gone'"):
        keys.mac("h", "gone")
    assert "AAEC" not in repr(keys) + repr(keys.current)


def test_a_key_file_open_to_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chain.key"
    path.write_text(TEST_KEY_TEXT + "\n")
    path.chmod(0o640)
    with pytest.raises(ChainKeyError, match=r"may be read by others \(mode 640\); `chmod 600"):
        read_key_file(path)
    path.chmod(0o600)
    assert read_key_file(path).current.id == "test-1"
    with pytest.raises(ChainKeyError, match="chain key file .*missing.*No such file"):
        read_key_file(tmp_path / "missing")


def test_a_key_file_is_made_once_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "chain.key"
    first = ensure_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert ensure_key_file(path).current.secret == first.current.secret
    with pytest.raises(ChainKeyError, match="key id 'a b'"):
        new_key("a b")


def test_a_signature_holds_only_for_its_key_and_message() -> None:
    signature = TEST_KEYS.sign(b"head")
    public = TEST_KEYS.public_keys()["test-1"]
    assert check_signature(public, b"head", signature)
    assert not check_signature(public, b"head!", signature)
    assert not check_signature(OTHER_KEYS.public_keys()["test-1"], b"head", signature)
    assert not check_signature("not base64!", b"head", signature)
    assert not check_signature(public, b"head", "AAAA")


@pytest.mark.parametrize(("line", "words"), [
    ("not json", "not an anchor (JSONDecodeError"),
    ("[1, 2]", "not an anchor (TypeError"),
    ('{"seq": 1}', "not an anchor (KeyError"),
    ('{"seq": "x", "hash": "h", "at": "", "key_id": "test-1", "signature": ""}',
     "not an anchor (ValueError"),
])
def test_malformed_anchor_lines_are_named(line: str, words: str) -> None:
    with pytest.raises(AnchorError, match="anchors line 3: ") as caught:
        parse_anchor(line, TEST_KEYS.public_keys(), "anchors line 3")
    assert words in str(caught.value)


def test_a_forged_or_foreign_anchor_is_named() -> None:
    anchor = signed_anchor(TEST_KEYS, 7, "ab" * 32, "2026-01-01T00:00:00.000000Z")
    assert parse_anchor(anchor.line(), TEST_KEYS.public_keys(), "here") == anchor
    forged = signed_anchor(OTHER_KEYS, 8, "cd" * 32, anchor.at)
    with pytest.raises(AnchorError, match="here: its signature does not hold"):
        parse_anchor(forged.line(), TEST_KEYS.public_keys(), "here")
    edited = anchor.line().replace('"seq":7', '"seq":8')
    with pytest.raises(AnchorError, match="signature does not hold"):
        parse_anchor(edited, TEST_KEYS.public_keys(), "here")
    with pytest.raises(AnchorError, match="key 'test-1', which is not one of the keys"):
        parse_anchor(anchor.line(), {}, "here")


@pytest.mark.parametrize("text", ["", "12", "12:", "x:" + "a" * 64, "-1:" + "a" * 64,
                                  "3:" + "a" * 63, "3:" + "g" * 64, "3:" + "a" * 65])
def test_a_malformed_expected_head_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not SEQ:HASH"):
        expected_head(text)
    assert expected_head("3:" + "A" * 64) == (3, "a" * 64)
