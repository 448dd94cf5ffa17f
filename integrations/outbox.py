"""Notices appended to a local JSON-lines outbox: the embedded `Notifier`.

With no chat or mail system configured, a notice is durably queued in a file that a
person (or the demo) reads. Each notice is one line written by a single `os.write` on an
`O_APPEND` descriptor, so lines from concurrent processes never interleave, and it is
fsynced before `notify` returns. A notice may carry a one-time approval code, so the
file is created readable by its owner only and the log line leaves the body out.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.models import Notice
from integrations.ports import NoticeUndelivered

log = logging.getLogger("changeflow.notify")


class OutboxNotifier:
    """`Notifier` that appends each notice to a JSON-lines file.

    Args:
        path: the outbox file; it and its folder are created on the first notice.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def notify(self, notice: Notice) -> None:
        """Append the notice as one JSON line and fsync it.

        Raises:
            NoticeUndelivered: the line could not be written whole (the notice is not
                delivered; the message names the file and the error).
        """
        record = {
            "at": datetime.now(UTC).isoformat(),
            "to": notice.to,
            "subject": notice.subject,
            "body": notice.body,
            "change_id": notice.change_id,
            "kind": notice.kind,
            "link": notice.link,
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self._append(line)
        except OSError as exc:
            raise NoticeUndelivered(f"cannot append the notice to {notice.to} to the outbox "
                                    f"{self.path}: {type(exc).__name__}: {exc.strerror or exc}"
                                    ) from None
        log.info("notice to %s (%s%s): %s", notice.to, notice.kind,
                 f", {notice.change_id}" if notice.change_id else "", notice.subject)


    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)


def read_outbox(path: Path) -> list[dict[str, Any]]:
    """Every notice in the outbox, oldest first; an outbox never written is empty.

    Raises:
        ValueError: a line is not a JSON object (the message names the line).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    notices: list[dict[str, Any]] = []
    # Only "\n" ends a record: a body may hold U+2028, which `splitlines` would split on.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            notice = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {number} is not JSON: {exc.msg}") from None
        if not isinstance(notice, dict):
            raise ValueError(f"{path}: line {number} is not a JSON object")
        notices.append(notice)
    return notices
