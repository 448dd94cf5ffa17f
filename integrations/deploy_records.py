"""A deploy command's own record of its deploys, as a file of JSON lines.

Each line is one deploy: `{"environment": ..., "version": ..., "deployed_at": ...}`, the
time in ISO 8601 with its offset. The sample service's deploy command writes one
(`changeflow.sample_service`); the practices audit compares it with the change log.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from domain.practices import DeployEntry
from integrations.ports import DeployRecordMalformed


class JsonLinesDeployRecords:
    """The `DeployRecords` port over files of JSON lines (`where` is a file's path)."""

    def entries(self, where: str) -> list[DeployEntry] | None:
        """Every line of the file as a deploy; None when there is no file.

        Raises:
            DeployRecordMalformed: a line is not a deploy; the message names the file and
                the line's number, never its text.
        """
        path = Path(where)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return None
        return [_entry(path, number, line) for number, line in enumerate(lines, 1)]


def _entry(path: Path, number: int, line: str) -> DeployEntry:
    try:
        entry: dict[str, Any] = json.loads(line)
        at = datetime.fromisoformat(str(entry["deployed_at"]))
        if at.tzinfo is None:
            raise ValueError("no time zone")
        return DeployEntry(str(entry["environment"]), str(entry["version"]), at)
    except (ValueError, KeyError, TypeError):
        raise DeployRecordMalformed(f"{path}: line {number}: not a deploy record "
                                    "(environment, version, deployed_at)") from None
