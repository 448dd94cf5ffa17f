"""An evidence pack verifies alone: `tools/verify_pack.py`, stdlib only, and a public key.

The pack is made from a real SQLite change log by the same code as `changeflow report`;
the verifier runs as `python3 -I` (no site-packages, no changeflow), and each forgery an
insider could try on a pack is named.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.loader import load_config
from config.settings import PROJECT_ROOT, Settings
from integrations.anchors import FileAnchors, signed_anchor
from integrations.changelog_schema import event_hash
from integrations.changelog_sql import SqlChangeLog
from integrations.factory import Adapters
from reporting.model import Quarter
from tasks.anchoring import publish_head
from tasks.reporting import produce_report
from tests.support.history import History
from tests.support.keys import OTHER_KEYS, TEST_KEYS
from tools.verify_pack import ed25519_verify

VERIFIER = PROJECT_ROOT / "tools" / "verify_pack.py"
Q3 = Quarter(2026, 3)
PUBLIC = f"test-1:{TEST_KEYS.public_keys()['test-1']}"


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Q3 pack of a log with three changes, one anchor published midway."""
    root = tmp_path_factory.mktemp("pack")
    settings = Settings(config_dir=PROJECT_ROOT / "config", var_dir=root / "var")
    log = SqlChangeLog(f"sqlite:///{root / 'log.db'}", keys=TEST_KEYS)
    History(log, "CHG-1", "normal", at(7, 1)).approve("engineering_lead", "erin") \
        .add("approval_granted").stage().approve("qa", "quinn", "staging-sign-off").gates() \
        .deploy(at(7, 3), at(7, 2)).close("succeeded")
    publish_head(log, [FileAnchors(settings.resolved_anchor_file)])
    History(log, "CHG-2", "normal", at(8, 4)).approve("engineering_lead", "erin") \
        .add("approval_granted").stage().approve("qa", "quinn", "staging-sign-off").gates() \
        .deploy(at(8, 6), at(8, 5), ok=False).roll_back(4, incident=True).close("rolled_back")
    History(log, "CHG-3", "normal", at(9, 1), changed_paths=["src/grüße \u2028 \"q\" \x1f.py"]) \
        .add("change_rejected", step="review", reasons=["no ünïcode left behind"]) \
        .close("rejected")
    adapters = Adapters(config=load_config(settings.config_dir), change_log=log,
                        tickets=None, runner=None, checks=None, notifiers={},  # type: ignore[arg-type]
                        settings=settings)
    _, written = produce_report(adapters, Q3, root / "out")
    log.close()
    return written["evidence"]


def verify(path: Path, *keys: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-I", str(VERIFIER), str(path)]
    for key in keys:
        argv += ["--public-key", key]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def rewritten(pack: Path, out: Path, edit: Callable[[dict[str, bytes]], None]) -> Path:
    """A copy of the pack with its members changed by `edit` (name -> bytes)."""
    with zipfile.ZipFile(pack) as source:
        members = {n: source.read(n) for n in source.namelist()}
    edit(members)
    with zipfile.ZipFile(out, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    return out


def events(members: dict[str, bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in members["chain/events.jsonl"].splitlines()]


def forge_approval(m: dict[str, bytes]) -> None:
    """Erin's review approval of CHG-1 (event 2) said to be Mallory's."""
    found = events(m)
    assert found[1]["type"] == "approval_recorded" and "erin" in str(found[1]["payload"])
    found[1]["payload"] = str(found[1]["payload"]).replace("erin", "mallory")
    put_events(m, found)


def rehashed(found: list[dict[str, object]]) -> list[dict[str, object]]:
    """The events with every hash and link recomputed, as a forger would."""
    prev = str(found[0]["prev_hash"])
    for e in found:
        e["prev_hash"] = prev
        e["hash"] = prev = event_hash(int(str(e["seq"])), str(e["change_id"]), str(e["type"]),
                                      str(e["at"]), str(e["actor"]), str(e["payload"]), prev)
    return found


def put_events(members: dict[str, bytes], found: list[dict[str, object]]) -> None:
    members["chain/events.jsonl"] = b"".join(
        json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        + b"\n" for e in found)


def test_a_pack_verifies_with_the_public_key_alone(pack: Path) -> None:
    done = verify(pack, PUBLIC)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pack verified:" in done.stdout and "1 earlier anchor(s) held" in done.stdout
    assert "3 change file(s)" in done.stdout and "signed by key 'test-1'" in done.stdout
    assert "config/policy.yaml sha256 " in done.stdout and done.stderr == ""
    with zipfile.ZipFile(pack) as opened:
        names = opened.namelist()
        manifest = json.loads(opened.read("manifest.json"))
        chain = [json.loads(line) for line in opened.read("chain/events.jsonl").splitlines()]
        readme = opened.read("README.txt").decode()
    assert {"chain/events.jsonl", "chain/start.json", "chain/checkpoint.json",
            "chain/anchors.jsonl", "chain/public-keys.json", "config/policy.yaml",
            "config/roster.yaml", "config/services.yaml", "manifest.json",
            "manifest.sig"} <= set(names)
    assert manifest["head"] == {"seq": chain[-1]["seq"], "hash": chain[-1]["hash"]}
    assert [e["seq"] for e in chain] == list(range(1, len(chain) + 1))
    assert {"key_id", "mac", "prev_hash", "payload", "at"} <= set(chain[0])
    assert "verify_pack.py" in readme and "--public-key" in readme


def test_without_a_key_given_the_packs_own_is_used_with_a_warning(pack: Path) -> None:
    done = verify(pack)
    assert done.returncode == 0 and "proves nothing about who made the pack" in done.stderr


def test_each_forgery_is_named(pack: Path, tmp_path: Path) -> None:
    def rehash_all(m: dict[str, bytes]) -> None:
        """A forger without the key: an edited event, every hash after it recomputed."""
        forge_approval(m)
        put_events(m, rehashed(events(m)))

    def drop_tail(m: dict[str, bytes]) -> None:
        put_events(m, events(m)[:-2])

    def add_member(m: dict[str, bytes]) -> None:
        m["changes/CHG-9.json"] = b"{}"

    def edit_policy(m: dict[str, bytes]) -> None:
        m["config/policy.yaml"] += b"\n# weaker\n"

    def unsigned(m: dict[str, bytes]) -> None:
        del m["manifest.sig"]

    cases: list[tuple[Callable[[dict[str, bytes]], None], str]] = [
        (forge_approval, "chain/events.jsonl does not match its hash in the manifest"),
        (rehash_all, "chain/events.jsonl does not match its hash in the manifest"),
        (drop_tail, "chain/events.jsonl does not match its hash"),
        (add_member, "changes/CHG-9.json is in the pack but not in the manifest"),
        (edit_policy, "config/policy.yaml does not match its hash"),
        (unsigned, "the pack is not signed"),
    ]
    for n, (edit, words) in enumerate(cases):
        done = verify(rewritten(pack, tmp_path / f"{n}.zip", edit), PUBLIC)
        assert done.returncode == 1 and "PACK DOES NOT VERIFY: " + words in done.stdout, \
            (edit.__name__, done.stdout)


def resign(m: dict[str, bytes]) -> None:
    """A forger who signs the head, the anchors and the manifest with a key of their own."""
    def signed(line: bytes) -> bytes:
        kept = json.loads(line)
        return signed_anchor(OTHER_KEYS, kept["seq"], kept["hash"], kept["at"]).line().encode()

    last = events(m)[-1]
    m["chain/checkpoint.json"] = signed(json.dumps(
        {"seq": last["seq"], "hash": last["hash"], "at": last["at"]}).encode()) + b"\n"
    m["chain/anchors.jsonl"] = b"".join(signed(line) + b"\n"
                                        for line in m["chain/anchors.jsonl"].splitlines())
    m["chain/public-keys.json"] = json.dumps(OTHER_KEYS.public_keys()).encode()
    manifest = json.loads(m["manifest.json"])
    manifest["head"] = {"seq": last["seq"], "hash": last["hash"]}
    manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in m.items()
                         if n not in ("manifest.json", "manifest.sig")}
    m["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    m["manifest.sig"] = OTHER_KEYS.sign(m["manifest.json"]).encode()


def test_a_pack_re_signed_with_another_key_fails_against_the_real_one(
        pack: Path, tmp_path: Path) -> None:
    def forge(m: dict[str, bytes]) -> None:
        m["config/policy.yaml"] += b"\n# weaker\n"
        resign(m)

    forged = rewritten(pack, tmp_path / "forged.zip", forge)
    done = verify(forged, PUBLIC)
    assert done.returncode == 1
    assert "manifest.sig is not key 'test-1' signing manifest.json" in done.stdout


def test_the_chain_itself_is_checked_when_the_manifest_is_re_signed(
        pack: Path, tmp_path: Path) -> None:
    """With the signing key (and the manifest re-signed), the chain's own checks name it."""
    def keyed(edit: Callable[[dict[str, bytes]], None]) -> Callable[[dict[str, bytes]], None]:
        def both(m: dict[str, bytes]) -> None:
            edit(m)
            resign(m)
        return both

    def time_back(m: dict[str, bytes]) -> None:
        found = events(m)
        found[5]["at"] = "2020-01-01T00:00:00.000000Z"
        put_events(m, rehashed(found))

    def drop_middle(m: dict[str, bytes]) -> None:
        found = events(m)
        put_events(m, found[:3] + found[4:])

    def foreign_change_event(m: dict[str, bytes]) -> None:
        change = json.loads(m["changes/CHG-1.json"])
        change["events"][0]["hash"] = "0" * 64
        m["changes/CHG-1.json"] = json.dumps(change).encode()

    def rewrite_before_the_anchor(m: dict[str, bytes]) -> None:
        forge_approval(m)
        put_events(m, rehashed(events(m)))

    def garbled_line(m: dict[str, bytes]) -> None:
        m["chain/events.jsonl"] = b'{"seq": 1}\n' + m["chain/events.jsonl"]

    def no_start(m: dict[str, bytes]) -> None:
        m["chain/start.json"] = b'{"seq": "one"}'

    other = f"test-1:{OTHER_KEYS.public_keys()['test-1']}"
    for edit, words in [(forge_approval, "event 2 (approval_recorded, CHG-1): its content "
                                         "does not match its hash"),
                        (time_back, "is dated 2020-01-01T00:00:00.000000Z, before the event"),
                        (drop_middle, "line 4 is event 5, not 4"),
                        (rewrite_before_the_anchor, "the chain was rewritten up to it"),
                        (garbled_line, "chain/events.jsonl line 1 is not an event"),
                        (no_start, "chain/start.json names no start"),
                        (foreign_change_event, "changes/CHG-1.json: its event 1 is not the "
                                               "chain's event 1")]:
        done = verify(rewritten(pack, tmp_path / f"{edit.__name__}.zip", keyed(edit)), other)
        assert done.returncode == 1 and words in done.stdout, (edit.__name__, done.stdout)


def test_not_a_pack_and_a_bad_key_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_text("not a zip")
    done = verify(junk, PUBLIC)
    assert done.returncode == 1 and "is not a readable zip" in done.stdout
    done = verify(junk, "test-1:short")
    assert done.returncode == 2 and "is not ID:KEY" in done.stderr


def test_the_verifiers_ed25519_agrees_with_the_cryptography_library() -> None:
    for n in range(8):
        key = Ed25519PrivateKey.from_private_bytes(bytes([n] * 32))
        public = key.public_key().public_bytes_raw()
        message = bytes(range(n * 7))
        signature = key.sign(message)
        assert ed25519_verify(public, message, signature)
        assert not ed25519_verify(public, message + b"x", signature)
        assert not ed25519_verify(public, message, signature[:-1] + bytes([signature[-1] ^ 1]))
    # RFC 8032, section 7.1, test 1 (the empty message)
    assert ed25519_verify(
        bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"), b"",
        bytes.fromhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"
                      "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"))
    assert not ed25519_verify(base64.b64decode("A" * 43 + "="), b"", bytes(64))
