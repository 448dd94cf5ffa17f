"""Anchors: the chain's head, signed and kept where the database's users cannot rewrite it.

A truncated tail, or a chain rebuilt by someone who holds the MAC key, still verifies on
its own. Checked against a head kept elsewhere, it does not: the anchored event must still
be in the chain with the anchored hash. Each anchor is one JSON line, signed with the
chain key's Ed25519 half, so an anchor file can be checked with the public key alone and
a forged line is named.

Targets (each one the `Anchors` port): a file, appended with O_APPEND and fsync (put it
on a volume the database's users cannot write: another host's mount, a WORM bucket's
mount); a comment on a ticket (a Jira issue whose comments changeflow's account may add
but not edit or delete); and RFC 3161 timestamps (`integrations.timestamps`), which prove
when each anchor existed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from integrations.chain_keys import ChainKeys, check_signature
from integrations.ports import ChangeTickets, TicketNotFound, TicketSystemError

ANCHOR_SEP = "\x1f"


@dataclass(frozen=True)
class Anchor:
    """A head of the chain as published: event `seq` had hash `hash` at `at`."""

    seq: int
    hash: str
    at: str
    key_id: str
    signature: str

    def message(self) -> bytes:
        """What the signature covers."""
        return ANCHOR_SEP.join(("changeflow-anchor-v1", str(self.seq), self.hash, self.at,
                                self.key_id)).encode()

    def line(self) -> str:
        """The anchor as one JSON line."""
        return json.dumps({"seq": self.seq, "hash": self.hash, "at": self.at,
                           "key_id": self.key_id, "signature": self.signature},
                          sort_keys=True, separators=(",", ":"))


def signed_anchor(keys: ChainKeys, seq: int, hash_: str, at: str) -> Anchor:
    """An anchor for event `seq`, signed with the current key."""
    unsigned = Anchor(seq, hash_, at, keys.current.id, "")
    return Anchor(seq, hash_, at, keys.current.id, keys.sign(unsigned.message()))


class AnchorError(ValueError):
    """An anchor line that is malformed or whose signature does not hold."""


def parse_anchor(text: str, public_keys: dict[str, str], where: str) -> Anchor:
    """One anchor line, its signature checked against `public_keys` (id -> base64).

    Raises:
        AnchorError: the line is not an anchor, names an unknown key, or is forged.
    """
    try:
        raw = json.loads(text)
        anchor = Anchor(int(raw["seq"]), str(raw["hash"]), str(raw["at"]), str(raw["key_id"]),
                        str(raw["signature"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise AnchorError(f"{where}: not an anchor ({type(exc).__name__}: {exc})") from None
    key = public_keys.get(anchor.key_id)
    if key is None:
        raise AnchorError(f"{where}: signed with key {anchor.key_id!r}, which is not one of "
                          "the keys")
    if not check_signature(key, anchor.message(), anchor.signature):
        raise AnchorError(f"{where}: its signature does not hold: the anchor was forged or "
                          "edited")
    return anchor


def append_line(path: Path, line: str) -> None:
    """Append one line to `path` (made if missing) with O_APPEND, synced to disk.

    Raises:
        AnchorError: the file cannot be written (the message names it and why).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise AnchorError(f"cannot append to {path}: {exc.strerror or exc}") from None


class FileAnchors:
    """An append-only file of anchors, one signed JSON line each."""

    def __init__(self, path: Path) -> None:
        """Anchors in `path` (created on the first publish)."""
        self.path = path
        self.where = str(path)

    def publish(self, anchor: Anchor) -> str:
        """Append `anchor`, synced to disk; returns where it went."""
        append_line(self.path, anchor.line())
        return str(self.path)

    def lines(self, upto: int) -> list[str]:
        """The file's lines that name an event from 1 to `upto`, unchecked, as written.

        For an evidence pack, whose verifier checks each one; a line that names no event is
        left out.
        """
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text().splitlines():
            try:
                seq = int(json.loads(line)["seq"])
            except (ValueError, KeyError, TypeError):
                continue
            if 0 < seq <= upto:
                found.append(line)
        return found

    def read(self, public_keys: dict[str, str]) -> list[Anchor]:
        """Every anchor in the file, oldest first, each signature checked.

        Raises:
            AnchorError: a line is malformed or forged (named by its line number).
        """
        if not self.path.exists():
            return []
        try:
            lines = self.path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise AnchorError(f"cannot read {self.path}: {exc}") from None
        return [parse_anchor(line, public_keys, f"{self.path} line {n}")
                for n, line in enumerate(lines, 1) if line.strip()]


ANCHOR_COMMENT = "changeflow anchor v1 (the change log's signed head; do not edit):"
_IN_COMMENT = re.compile(r"\{noformat\}(.*?)\{noformat\}", re.S)


class TicketAnchors:
    """Anchors as comments on one ticket, one signed line each.

    Give changeflow's account the right to add comments to that ticket's project but not to
    edit or delete them, so not even the workers can take an anchor back.
    """

    def __init__(self, tickets: ChangeTickets, key: str) -> None:
        """Anchors as comments on ticket `key`."""
        self.tickets = tickets
        self.key = key
        self.where = f"comments of {key}"

    def publish(self, anchor: Anchor) -> str:
        """Add the anchor as a comment; returns where it went."""
        try:
            self.tickets.add_comment(self.key, f"{ANCHOR_COMMENT}\n{{noformat}}"
                                               f"{anchor.line()}{{noformat}}")
        except (TicketNotFound, TicketSystemError) as exc:
            raise AnchorError(f"cannot comment on {self.key}: {exc}") from None
        return self.where

    def read(self, public_keys: dict[str, str]) -> list[Anchor]:
        """Every anchor comment, oldest first, each signature checked; other comments skipped.

        Raises:
            AnchorError: an anchor comment is malformed or forged (named by its number).
        """
        try:
            bodies = self.tickets.comments(self.key)
        except (TicketNotFound, TicketSystemError) as exc:
            raise AnchorError(f"cannot read the comments of {self.key}: {exc}") from None
        found = []
        for n, body in enumerate(bodies, 1):
            if not body.startswith(ANCHOR_COMMENT):
                continue
            line = _IN_COMMENT.search(body)
            found.append(parse_anchor(line.group(1) if line else "", public_keys,
                                      f"{self.key} comment {n}"))
        return found
