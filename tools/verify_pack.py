#!/usr/bin/env python3
"""Check a changeflow evidence pack with nothing but Python 3 and the chain's public key.

    python3 verify_pack.py evidence-2026-Q3.zip --public-key ID:KEY

Take the public key from its keeper (`changeflow log public-key` prints it), not from the
pack: a pack's own copy is only used, with a warning, when none is given. The pack
verifies when:

- `manifest.sig` is the key's Ed25519 signature of `manifest.json`, and every other file
  in the pack is listed there with its sha256 (none missing, none added);
- each event in `chain/events.jsonl` follows the one before it (sequence number and
  previous hash, from `chain/start.json`), its hash is the sha256 of its canonical
  encoding, and its time is not before its predecessor's;
- the chain ends at the head that `chain/checkpoint.json` signs and the manifest names;
- every anchor in `chain/anchors.jsonl` is signed by a known key and its event is in the
  chain with the anchored hash;
- every event listed in `changes/*.json` is the chain's event with that number and hash.

The encoding (also in changeflow's docs/change-log.md): an event's hash is the lower-case
hex sha256 of the UTF-8 bytes of seq, change_id, type, at, actor, payload and prev_hash
joined by the unit separator U+001F, where seq is decimal, at is the UTC time as
YYYY-MM-DDTHH:MM:SS.ffffffZ, payload is the canonical JSON text (keys sorted, separators
"," and ":", non-ASCII as itself, no NaN) exactly as stored, and the first event's
prev_hash is 64 zeros (or a retention checkpoint's hash). Each event's MAC (HMAC-SHA256)
needs the secret key and is not checked here; the signed head covers every event's hash.

Exit status 0: "pack verified"; 1: the first thing that does not hold, named; 2: usage.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
import zipfile

SEP = "\x1f"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")
HEX64 = re.compile(r"[0-9a-f]{64}\Z")
FORMAT = "changeflow-pack-v1"
UNLISTED = {"manifest.json", "manifest.sig"}

# -- Ed25519 verification (RFC 8032, section 5.1.7), in plain integers ---------------------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

Point = tuple[int, int, int, int]


def _add(p: Point, q: Point) -> Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _times(s: int, p: Point) -> Point:
    q: Point = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _same(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


def _x_of(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    return _P - x if (x & 1) != sign else x


def _point(raw: bytes) -> Point | None:
    if len(raw) != 32:
        return None
    y = int.from_bytes(raw, "little")
    x = _x_of(y & ((1 << 255) - 1), y >> 255)
    y &= (1 << 255) - 1
    return None if x is None else (x, y, 1, x * y % _P)


_BY = 4 * pow(5, _P - 2, _P) % _P
_BX = _x_of(_BY, 0) or 0
_BASE: Point = (_BX, _BY, 1, _BX * _BY % _P)


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is `public`'s Ed25519 signature of `message`."""
    if len(signature) != 64:
        return False
    a, r = _point(public), _point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(),
                       "little") % _L
    return _same(_times(s, _BASE), _add(r, _times(k, a)))


# -- the pack -------------------------------------------------------------------------------


class NotVerified(Exception):
    """Something in the pack does not hold; the message names it."""


def event_hash(e: dict[str, object]) -> str:
    """The hash of one exported event (see the module's encoding)."""
    body = SEP.join(str(e[k]) for k in ("seq", "change_id", "type", "at", "actor", "payload",
                                        "prev_hash"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise NotVerified(f"{what} is not base64") from None


def _json(pack: zipfile.ZipFile, name: str) -> dict[str, object]:
    try:
        value = json.loads(pack.read(name))
    except KeyError:
        raise NotVerified(f"the pack has no {name}") from None
    except ValueError as exc:
        raise NotVerified(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise NotVerified(f"{name} is not a JSON object")
    return value


def _anchor_message(a: dict[str, object]) -> bytes:
    return SEP.join(("changeflow-anchor-v1", str(a["seq"]), str(a["hash"]), str(a["at"]),
                     str(a["key_id"]))).encode()


def _check_anchor(a: dict[str, object], keys: dict[str, bytes], where: str) -> None:
    try:
        key = keys[str(a["key_id"])]
        signature = _b64(str(a["signature"]), f"{where}'s signature")
        signed = ed25519_verify(key, _anchor_message(a), signature)
    except KeyError as exc:
        raise NotVerified(f"{where}: names no key or field {exc}") from None
    if not signed:
        raise NotVerified(f"{where}: its signature does not hold: it was forged or edited")


def check_manifest(pack: zipfile.ZipFile, keys: dict[str, bytes]) -> dict[str, object]:
    """The manifest, its signature and every member's hash checked."""
    manifest = _json(pack, "manifest.json")
    if manifest.get("format") != FORMAT:
        raise NotVerified(f"manifest.json is not a {FORMAT} manifest")
    key_id = str(manifest.get("key_id"))
    if key_id not in keys:
        raise NotVerified(f"the manifest is signed with key {key_id!r}, which is not given")
    try:
        signature = _b64(pack.read("manifest.sig").decode(), "manifest.sig")
    except KeyError:
        raise NotVerified("the pack is not signed (no manifest.sig): the change log did not "
                          "verify when it was made") from None
    if not ed25519_verify(keys[key_id], pack.read("manifest.json"), signature):
        raise NotVerified(f"manifest.sig is not key {key_id!r} signing manifest.json: "
                          "the pack was altered or signed with another key")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise NotVerified("manifest.json lists no files")
    present = set(pack.namelist()) - UNLISTED
    added = sorted(present - set(files))
    if added:
        raise NotVerified(f"{added[0]} is in the pack but not in the manifest: it was added")
    for name, digest in sorted(files.items()):
        if name not in present:
            raise NotVerified(f"{name} is in the manifest but not in the pack: it was removed")
        actual = hashlib.sha256()
        with pack.open(name) as stream:
            while chunk := stream.read(1 << 20):
                actual.update(chunk)
        if actual.hexdigest() != digest:
            raise NotVerified(f"{name} does not match its hash in the manifest: it was edited")
    return manifest


def check_events(pack: zipfile.ZipFile, head: dict[str, object]) -> dict[int, str]:
    """Every event's hash, link and time; the chain's hashes by seq."""
    start = _json(pack, "chain/start.json")
    try:
        seq, prev, at = int(str(start["seq"])), str(start["hash"]), ""
    except (KeyError, ValueError):
        raise NotVerified("chain/start.json names no start (seq and hash)") from None
    hashes: dict[int, str] = {}
    with pack.open("chain/events.jsonl") as stream:
        for n, raw in enumerate(stream, 1):
            try:
                e = json.loads(raw)
                fields = {k: e[k] for k in ("seq", "change_id", "type", "at", "actor",
                                            "payload", "prev_hash", "hash")}
            except (ValueError, KeyError, TypeError) as exc:
                raise NotVerified(f"chain/events.jsonl line {n} is not an event: {exc}") from None
            name = f"event {fields['seq']} ({fields['type']}, {fields['change_id']})"
            if fields["seq"] != seq + 1:
                raise NotVerified(f"chain/events.jsonl line {n} is event {fields['seq']}, not "
                                  f"{seq + 1}: events were removed, inserted or reordered")
            if fields["prev_hash"] != prev:
                raise NotVerified(f"{name} does not follow the event before it")
            if not isinstance(fields["payload"], str) or not TIME.match(str(fields["at"])):
                raise NotVerified(f"{name}: its time or payload is not in the hashed form")
            if event_hash(fields) != fields["hash"]:
                raise NotVerified(f"{name}: its content does not match its hash: it was edited")
            if str(fields["at"]) < at:
                raise NotVerified(f"{name} is dated {fields['at']}, before the event before it")
            seq, prev, at = int(fields["seq"]), str(fields["hash"]), str(fields["at"])
            hashes[seq] = prev
    if (seq, prev) != (head.get("seq"), head.get("hash")):
        raise NotVerified(f"the chain ends at event {seq} with hash {prev}, not at the signed "
                          f"head {head.get('seq')} {head.get('hash')}: events were removed "
                          "at the end")
    return hashes


def check_anchors(pack: zipfile.ZipFile, keys: dict[str, bytes], head: dict[str, object],
                  hashes: dict[int, str]) -> int:
    """The signed checkpoint is the head; every anchor is signed and held. Returns anchors."""
    checkpoint = _json(pack, "chain/checkpoint.json")
    _check_anchor(checkpoint, keys, "chain/checkpoint.json")
    if (checkpoint.get("seq"), checkpoint.get("hash")) != (head.get("seq"), head.get("hash")):
        raise NotVerified("chain/checkpoint.json signs another head than the manifest's")
    lines = pack.read("chain/anchors.jsonl").decode().splitlines()
    for n, line in enumerate(lines, 1):
        where = f"chain/anchors.jsonl line {n}"
        try:
            anchor = json.loads(line)
            seq = int(anchor["seq"])
        except (ValueError, KeyError, TypeError):
            raise NotVerified(f"{where} is not an anchor") from None
        _check_anchor(anchor, keys, where)
        if seq in hashes and hashes[seq] != anchor["hash"]:
            raise NotVerified(f"{where}: event {seq} now has hash {hashes[seq]}, not the "
                              f"anchored {anchor['hash']}: the chain was rewritten up to it")
    return len(lines)


def check_changes(pack: zipfile.ZipFile, hashes: dict[int, str]) -> int:
    """Every event in a change's file is the chain's. Returns the changes checked."""
    names = sorted(n for n in pack.namelist() if n.startswith("changes/"))
    for name in names:
        events = _json(pack, name).get("events")
        for event in events if isinstance(events, list) else []:
            seq = event.get("seq") if isinstance(event, dict) else None
            if not isinstance(seq, int) or hashes.get(seq) != event.get("hash"):
                raise NotVerified(f"{name}: its event {seq} is not the chain's event {seq}")
    return len(names)


def verify(path: str, given: dict[str, bytes]) -> str:
    """Check the pack at `path`; the summary when it verifies, else `NotVerified`."""
    try:
        pack = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise NotVerified(f"{path} is not a readable zip: {exc}") from None
    with pack:
        keys = given or {k: _b64(str(v), f"public key {k!r}") for k, v in
                         _json(pack, "chain/public-keys.json").items()}
        manifest = check_manifest(pack, keys)
        head = manifest.get("head")
        if not isinstance(head, dict):
            raise NotVerified("manifest.json names no head")
        hashes = check_events(pack, head)
        anchors = check_anchors(pack, keys, head, hashes)
        changes = check_changes(pack, hashes)
    key_id = str(manifest["key_id"])
    fingerprint = hashlib.sha256(base64.b64encode(keys[key_id])).hexdigest()[:16]
    files = manifest["files"]
    assert isinstance(files, dict)
    configs = "".join(f"\n  {name} sha256 {digest}" for name, digest in sorted(files.items())
                      if name.startswith("config/"))
    return (f"pack verified: {len(hashes)} event(s), head event {head['seq']} hash "
            f"{head['hash']}, {anchors} earlier anchor(s) held, {changes} change file(s); "
            f"signed by key {key_id!r} (fingerprint {fingerprint})\nconfiguration in force:"
            f"{configs or ' (none in the pack)'}")


def _public_key(text: str) -> tuple[str, bytes]:
    key_id, sep, encoded = text.partition(":")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not sep or not key_id or len(raw) != 32:
        raise argparse.ArgumentTypeError(f"{text!r} is not ID:KEY (a key id and a 32-byte "
                                         "public key in base64, as `changeflow log "
                                         "public-key` prints them)")
    return key_id, raw


def main(argv: list[str] | None = None) -> int:
    """The command line; see the module's doc."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pack", help="the evidence pack (evidence-QUARTER.zip)")
    parser.add_argument("--public-key", type=_public_key, action="append", default=[],
                        metavar="ID:KEY", help="a chain key's public half (repeatable)")
    args = parser.parse_args(argv)
    if not args.public_key:
        print("warning: no --public-key given; the pack's own chain/public-keys.json is used, "
              "which proves nothing about who made the pack", file=sys.stderr)
    try:
        print(verify(args.pack, dict(args.public_key)))
    except NotVerified as exc:
        print(f"PACK DOES NOT VERIFY: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
