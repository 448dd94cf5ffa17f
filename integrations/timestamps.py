"""Anchors stamped by an RFC 3161 timestamp authority: proof of when each one existed.

A key holder who rewrites the chain and its anchor file can sign new anchors, but cannot
have them stamped in the past: each anchor here carries the authority's token over its
exact line, so the time it existed is the authority's word, not ours. The token is asked
for over HTTP (`application/timestamp-query`, RFC 3161 section 3.4) and made and checked
with `openssl ts`, against the authority's CA certificate.

Each line of the file is `{"anchor": "<the anchor's line>", "timestamp": "<token, base64>"}`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from integrations.anchors import Anchor, AnchorError, append_line, parse_anchor
from integrations.changelog_schema import parse_time

CLOCK_SKEW = timedelta(minutes=5)
"""How far the authority's clock may be behind ours before a stamp is called too early."""

_STAMPED = re.compile(r"^Time stamp: (\w{3}) +(\d{1,2}) (\d\d:\d\d:\d\d)(?:\.\d+)? (\d{4}) GMT$",
                      re.M)


class TimestampAnchors:
    """Anchors in an append-only file, each with an RFC 3161 token from an authority."""

    def __init__(self, path: Path, url: str, ca_file: Path, timeout_seconds: float = 10.0,
                 openssl: str = "openssl") -> None:
        """Anchors in `path`, stamped by the authority at `url`, checked against `ca_file`."""
        self.path = path
        self.url = url
        self.ca_file = ca_file
        self.timeout_seconds = timeout_seconds
        self.openssl = openssl
        self.where = f"{path} (stamped by {url})"

    def publish(self, anchor: Anchor) -> str:
        """Have the anchor stamped, check the token, and append both; returns where.

        Raises:
            AnchorError: the authority refused, is unreachable, or its token does not hold.
        """
        line = anchor.line()
        with tempfile.TemporaryDirectory(prefix="changeflow-ts-") as work:
            query = Path(work) / "query.tsq"
            self._openssl("making a timestamp query", "ts", "-query", "-sha256", "-cert",
                          "-digest", _digest(line), "-out", str(query))
            try:
                answer = requests.post(self.url, data=query.read_bytes(),
                                       timeout=self.timeout_seconds,
                                       headers={"Content-Type": "application/timestamp-query"})
            except requests.RequestException as exc:
                raise AnchorError(f"timestamp authority {self.url} is unreachable: "
                                  f"{type(exc).__name__}") from None
        if answer.status_code != 200 or not answer.headers.get(
                "Content-Type", "").startswith("application/timestamp-reply"):
            raise AnchorError(f"timestamp authority {self.url} answered HTTP "
                              f"{answer.status_code} ({answer.headers.get('Content-Type')}), "
                              "not a timestamp reply")
        self.stamped_at(line, answer.content, anchor, f"the reply of {self.url}")
        entry = json.dumps({"anchor": line, "timestamp": base64.b64encode(answer.content)
                            .decode()}, sort_keys=True, separators=(",", ":"))
        append_line(self.path, entry)
        return self.where

    def read(self, public_keys: dict[str, str]) -> list[Anchor]:
        """Every anchor, oldest first: its signature, its token, and the stamps' order checked.

        Raises:
            AnchorError: a line is malformed, forged, its token does not hold or is not for
                it, or it was stamped before the event it anchors or before the line above.
        """
        if not self.path.exists():
            return []
        found, last = [], datetime.min.replace(tzinfo=UTC)
        for n, text in enumerate(self.path.read_text().splitlines(), 1):
            if not text.strip():
                continue
            where = f"{self.path} line {n}"
            try:
                entry = json.loads(text)
                line, token = str(entry["anchor"]), base64.b64decode(entry["timestamp"],
                                                                     validate=True)
            except (ValueError, KeyError, TypeError):
                raise AnchorError(f"{where}: not a stamped anchor") from None
            anchor = parse_anchor(line, public_keys, where)
            stamped = self.stamped_at(line, token, anchor, where)
            if stamped < last:
                raise AnchorError(f"{where}: stamped {stamped.isoformat()}, before the anchor "
                                  "above it: lines were reordered or inserted")
            last = stamped
            found.append(anchor)
        return found

    def stamped_at(self, line: str, token: bytes, anchor: Anchor, where: str) -> datetime:
        """When the authority says `line` existed, once its token is checked for it.

        Raises:
            AnchorError: the token does not verify against the CA for exactly `line`, or its
                time is before the anchored event's.
        """
        with tempfile.TemporaryDirectory(prefix="changeflow-ts-") as work:
            reply = Path(work) / "reply.tsr"
            reply.write_bytes(token)
            self._openssl(f"{where}: checking its timestamp", "ts", "-verify", "-digest",
                          _digest(line), "-in", str(reply), "-CAfile", str(self.ca_file))
            text = self._openssl(f"{where}: reading its timestamp", "ts", "-reply", "-in",
                                 str(reply), "-text")
        match = _STAMPED.search(text)
        if match is None:
            raise AnchorError(f"{where}: its timestamp names no time")
        stamped = datetime.strptime(" ".join(match.groups()), "%b %d %H:%M:%S %Y") \
            .replace(tzinfo=UTC)
        if anchor.at and stamped < parse_time(anchor.at) - CLOCK_SKEW:
            raise AnchorError(f"{where}: stamped {stamped.isoformat()}, before event "
                              f"{anchor.seq} it anchors ({anchor.at}): the event's time is "
                              "forged")
        return stamped

    def _openssl(self, doing: str, *args: str) -> str:
        try:
            done = subprocess.run([self.openssl, *args], capture_output=True, text=True,
                                  timeout=self.timeout_seconds, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AnchorError(f"{doing}: cannot run {self.openssl}: {exc}") from None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            raise AnchorError(f"{doing}: openssl refused it: {why[-1] if why else 'no reason'}")
        return done.stdout


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()
