"""Change tickets as human-written YAML files in a folder: the embedded `ChangeTickets`.

A ticket is `<folder>/<KEY>.yaml` (the key is the file stem, e.g. `CHG-101`) holding the
change fields by changeflow's names plus `status` and `watchers`; see
`examples/tickets/README.md` for the format. changeflow never rewrites a person's file:
its own writes (comments, transitions) go to a sidecar `<folder>/.changeflow/<KEY>.json`,
replaced atomically under a lock so that concurrent writers lose nothing, and a status
set there overrides the file's.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from domain.intake import shown
from domain.models import IncidentFacts, Ticket
from integrations.ports import TicketNotFound

KEY_PATTERN = re.compile(r"^[A-Z][A-Z0-9]*-[0-9]+$")
"""A ticket key: a project prefix and a number. Anything else never becomes a path."""

SIDECAR_DIR = ".changeflow"
"""Subfolder of the tickets folder where changeflow keeps its own writes."""

DEFAULT_STATUS = "open"
_NOT_FIELDS = frozenset({"status", "watchers"})

log = logging.getLogger(__name__)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice (PyYAML silently keeps the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _sort_key(key: str) -> tuple[str, int]:
    """Order keys as people do: CHG-9 before CHG-10."""
    prefix, _, number = key.rpartition("-")
    return prefix, int(number)


def _yaml_error(name: str, exc: yaml.YAMLError) -> ValueError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return ValueError(f"{name}: not valid YAML: {where}{problem}")


class LocalChangeTickets:
    """`ChangeTickets` over a folder of YAML files, for running with no ticket system.

    Args:
        folder: the folder holding `<KEY>.yaml` files. It need not exist yet (no tickets).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sidecars = folder / SIDECAR_DIR

    def web_url(self, key: str) -> None:
        """Local tickets have no page: None."""
        return None

    def get(self, key: str) -> Ticket:
        """The ticket in `<folder>/<key>.yaml`.

        Raises:
            ValueError: the key is not `PREFIX-NUMBER`, or the file is not a YAML mapping
                of change fields (the message names the file and, for syntax, the line).
            TicketNotFound: there is no such file.
        """
        path = self._ticket_path(key)
        if not path.is_file():
            raise TicketNotFound(f"no ticket {key} in {self.folder}")
        return self._load(key, path)

    def search(self, status: str | None = None) -> list[Ticket]:
        """Every ticket in the folder (optionally only those in `status`), in key order.

        A malformed file raises `ValueError` naming it rather than being skipped: a ticket
        that silently disappears from the search would never be flagged to its author.
        """
        if not self.folder.is_dir():
            return []
        keys = []
        for path in self.folder.glob("*.yaml"):
            if KEY_PATTERN.fullmatch(path.stem):
                keys.append(path.stem)
            else:
                log.warning("ignoring %s: its name is not a ticket key like CHG-101", path)
        tickets = [self._load(key, self.folder / f"{key}.yaml") for key in
                   sorted(keys, key=_sort_key)]
        return [t for t in tickets if status is None or t.status == status]

    def add_comment(self, key: str, body: str) -> None:
        """Append a comment to the ticket's sidecar (the ticket file is left alone)."""
        self._require(key)
        with self._sidecar_update(key) as state:
            state["comments"].append({"at": datetime.now(UTC).isoformat(), "body": body})

    def transition(self, key: str, status: str) -> None:
        """Set the ticket's status in its sidecar; it overrides the file's `status`."""
        if not status.strip():
            raise ValueError("a status must not be empty")
        self._require(key)
        with self._sidecar_update(key) as state:
            state["status"] = status

    def comments(self, key: str) -> list[str]:
        """The bodies of changeflow's comments on the ticket, oldest first."""
        self._require(key)
        return [c["body"] for c in self._read_sidecar(key)["comments"]]

    def add_link(self, key: str, url: str, title: str) -> None:
        """Record an evidence link in the ticket's sidecar, once per URL."""
        self._require(key)
        with self._sidecar_update(key) as state:
            if all(link["url"] != url for link in state["links"]):
                state["links"].append({"url": url, "title": title})

    def links(self, key: str) -> list[dict[str, str]]:
        """The evidence links changeflow attached to the ticket."""
        self._require(key)
        return list(self._read_sidecar(key)["links"])

    def incident(self, ref: str) -> IncidentFacts | None:
        """Local tickets hold no incident system: an incident reference stays a claim."""
        return None

    def open_incident(self, change_key: str, incident_id: str, summary: str,
                      priority: int) -> str:
        """Record the incident in the change's sidecar (once); its key is `incident_id`."""
        self._require(change_key)
        with self._sidecar_update(change_key) as state:
            state["incidents"].setdefault(incident_id, {"summary": summary,
                                                        "priority": priority})
        return incident_id

    def _ticket_path(self, key: str) -> Path:
        if not KEY_PATTERN.fullmatch(key):
            raise ValueError(f"{key!r} is not a ticket key (expected e.g. CHG-101)")
        return self.folder / f"{key}.yaml"

    def _require(self, key: str) -> None:
        if not self._ticket_path(key).is_file():
            raise TicketNotFound(f"no ticket {key} in {self.folder}")

    def _load(self, key: str, path: Path) -> Ticket:
        try:
            stat = path.stat()
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError as exc:
            raise TicketNotFound(f"no ticket {key} in {self.folder}") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as exc:
            raise _yaml_error(path.name, exc) from None
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            # PyYAML's constructors raise these on some input: a 5,000-digit number, a
            # date like 2026-13-45, a list as a key, a bad !!timestamp, deep nesting.
            raise ValueError(f"{path.name}: not valid YAML: {str(exc)[:200]}") from None
        if data is None:
            raise ValueError(f"{path.name}: empty; expected a mapping of change fields")
        if not isinstance(data, dict):
            raise ValueError(f"{path.name}: expected a mapping of change fields, "
                             f"got {type(data).__name__}")
        bad_keys = [k for k in data if not isinstance(k, str)]
        if bad_keys:
            raise ValueError(f"{path.name}: field names must be text, got {shown(bad_keys[0])}")
        status = data.get("status", DEFAULT_STATUS)
        if not isinstance(status, str) or not status.strip():
            raise ValueError(f"{path.name}: status must be text, got {shown(status)}")
        watchers = data.get("watchers") or []
        if not isinstance(watchers, list) or not all(isinstance(w, str) for w in watchers):
            raise ValueError(f"{path.name}: watchers must be a list of roster ids")
        sidecar_status = self._read_sidecar(key)["status"]
        return Ticket(
            key=key,
            status=sidecar_status or status,
            fields={k: v for k, v in data.items() if k not in _NOT_FIELDS},
            updated=datetime.fromtimestamp(stat.st_mtime, UTC),
            watchers=watchers,
        )

    def _sidecar_path(self, key: str) -> Path:
        return self._sidecars / f"{key}.json"

    def _read_sidecar(self, key: str) -> dict[str, Any]:
        path = self._sidecar_path(key)
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"status": None, "comments": [], "links": [], "incidents": {}}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: changeflow's sidecar is not valid JSON: {exc}") from None
        if (not isinstance(state, dict) or not isinstance(state.get("comments", []), list)
                or not isinstance(state.get("status"), str | None)):
            raise ValueError(f"{path}: changeflow's sidecar has an unexpected shape")
        return {"status": state.get("status"), "comments": state.get("comments", []),
                "links": state.get("links", []), "incidents": state.get("incidents", {})}

    @contextmanager
    def _sidecar_update(self, key: str) -> Iterator[dict[str, Any]]:
        """Read, let the caller change, and atomically replace a sidecar, under a lock.

        The lock (an `flock` on `<KEY>.lock`) makes read-modify-write safe across
        processes; `os.replace` means a reader sees the old or the new file, never half.
        """
        self._sidecars.mkdir(parents=True, exist_ok=True)
        with open(self._sidecars / f"{key}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read_sidecar(key)
            yield state
            _write_atomically(self._sidecar_path(key), json.dumps(state, indent=2) + "\n")


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
