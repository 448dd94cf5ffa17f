"""The change log's keys: a MAC on every event, a signature on every published head.

The hash chain alone proves only that events were not changed *by someone who did not
recompute the hashes*; anyone who can write to the database can recompute them. So each
event also carries a MAC (HMAC-SHA256 over its hash) under a key the database does not
hold, and every head that changeflow publishes (an anchor, a pack) is signed with an
Ed25519 key derived from the same secret, whose public half can be handed to an auditor.

A key is `ID:SECRET`: an id (letters, digits, `._-`, at most 32) and 32 random bytes in
base64. Several keys may be given, most recent first: the first writes, all verify, so a
key can be rotated without losing the older events' proof. From one secret:
- the MAC key is HMAC-SHA256(secret, "changeflow-chain-mac");
- the signing key is the Ed25519 private key whose 32-byte seed is
  HMAC-SHA256(secret, "changeflow-chain-sign");
- the approval-code key (the digests of one-time codes, `domain.otp`) is
  HMAC-SHA256(secret, "changeflow-approval-code").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z")


class ChainKeyError(ValueError):
    """A chain key that is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True, repr=False)
class ChainKey:
    """One key: its id and the secret both halves are derived from. Never printed."""

    id: str
    secret: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"ChainKey(id={self.id!r}, secret=***)"

    @property
    def mac_key(self) -> bytes:
        """The HMAC key of event MACs."""
        return hmac.digest(self.secret, b"changeflow-chain-mac", "sha256")

    @property
    def code_key(self) -> bytes:
        """The HMAC key of one-time codes' digests."""
        return hmac.digest(self.secret, b"changeflow-approval-code", "sha256")

    def signing_key(self) -> Ed25519PrivateKey:
        """The Ed25519 key that signs published heads."""
        seed = hmac.digest(self.secret, b"changeflow-chain-sign", "sha256")
        return Ed25519PrivateKey.from_private_bytes(seed)

    def public_key(self) -> str:
        """The Ed25519 public key, base64 of its 32 raw bytes: safe to hand out."""
        raw = self.signing_key().public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()


class ChainKeys:
    """The keys the change log writes and verifies with; the first one writes."""

    def __init__(self, keys: list[ChainKey]) -> None:
        """Hold `keys`, most recent first.

        Raises:
            ChainKeyError: no key, or two keys with one id.
        """
        if not keys:
            raise ChainKeyError("no chain key given")
        ids = [k.id for k in keys]
        if len(set(ids)) != len(ids):
            raise ChainKeyError(f"chain key ids repeat: {', '.join(ids)}")
        self.keys = {k.id: k for k in keys}
        self.current = keys[0]
        self._mac_keys = {k.id: k.mac_key for k in keys}

    def __repr__(self) -> str:
        return f"ChainKeys({', '.join(self.keys)})"

    @classmethod
    def parse(cls, text: str, source: str) -> ChainKeys:
        """Keys from text: `ID:SECRET` items, one per line or separated by commas.

        Raises:
            ChainKeyError: an item is malformed; the message names `source` and the item's
                place, never the secret.
        """
        items = [i.strip() for i in re.split(r"[,\n]", text) if i.strip()
                 and not i.strip().startswith("#")]
        keys = []
        for n, item in enumerate(items, 1):
            key_id, sep, encoded = item.partition(":")
            if not sep or not KEY_ID.match(key_id):
                raise ChainKeyError(f"{source}: key {n} must be ID:SECRET with an id of letters, "
                                "digits and ._- (at most 32); make one with `changeflow log "
                                "new-key ID`")
            try:
                secret = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                secret = b""
            if len(secret) != 32:
                raise ChainKeyError(f"{source}: key {key_id!r} must be 32 bytes in base64; make "
                                "one with `changeflow log new-key ID`")
            keys.append(ChainKey(key_id, secret))
        if not keys:
            raise ChainKeyError(f"{source}: holds no key; make one with "
                                "`changeflow log new-key ID`")
        return cls(keys)

    def mac(self, event_hash: str, key_id: str | None = None) -> str:
        """The MAC of an event's hash under `key_id` (default: the current key).

        Raises:
            ChainKeyError: `key_id` is not one of these keys.
        """
        try:
            key = self._mac_keys[key_id or self.current.id]
        except KeyError:
            raise ChainKeyError(f"unknown chain key {key_id!r}") from None
        return hmac.digest(key, event_hash.encode(), "sha256").hex()

    def code_key(self, key_id: str | None = None) -> tuple[str, bytes]:
        """The id and approval-code key of `key_id` (default: the current key).

        Raises:
            ChainKeyError: `key_id` is not one of these keys (a request made under a
                retired key cannot be answered: its codes are reissued).
        """
        key = self.keys.get(key_id or self.current.id)
        if key is None:
            raise ChainKeyError(f"unknown chain key {key_id!r}")
        return key.id, key.code_key

    def mac_keys(self) -> dict[str, str]:
        """Every MAC key by id, hex: for a verifying worker process (on its stdin only)."""
        return {k: v.hex() for k, v in self._mac_keys.items()}

    def sign(self, message: bytes) -> str:
        """An Ed25519 signature (base64) of `message` with the current key."""
        return base64.b64encode(self.current.signing_key().sign(message)).decode()

    def public_keys(self) -> dict[str, str]:
        """Every key's public half by id."""
        return {k.id: k.public_key() for k in self.keys.values()}


def check_signature(public_key: str, message: bytes, signature: str) -> bool:
    """Whether `signature` (base64) is `public_key`'s (base64) signature of `message`."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def new_key(key_id: str) -> str:
    """A fresh key line `ID:SECRET`.

    Raises:
        ChainKeyError: the id is malformed.
    """
    if not KEY_ID.match(key_id):
        raise ChainKeyError(f"key id {key_id!r}: use letters, digits and ._- (at most 32)")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def read_key_file(path: Path) -> ChainKeys:
    """Keys from a file (one `ID:SECRET` a line, most recent first).

    Raises:
        ChainKeyError: the file is missing, unreadable, open to others, or malformed.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise ChainKeyError(f"chain key file {path}: {exc.strerror or exc}") from None
    if os.name == "posix" and mode & 0o077:
        raise ChainKeyError(f"chain key file {path} may be read by others (mode "
                        f"{mode & 0o777:o}); `chmod 600 {path}`")
    return ChainKeys.parse(text, f"chain key file {path}")


def ensure_key_file(path: Path, key_id: str = "local-1") -> ChainKeys:
    """The keys in `path`, writing a new key there first (mode 600) if it does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_key(key_id) + "\n")
    return read_key_file(path)


def fingerprint(public_key: str) -> str:
    """A short, printable fingerprint of a public key (sha256, first 16 hex digits)."""
    return hashlib.sha256(public_key.encode()).hexdigest()[:16]
