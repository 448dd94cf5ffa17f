"""The lock file pins, with hashes, exactly what `pyproject.toml` asks for.

`make demo` and `make test` install from `requirements.lock` in pip's hash-checking mode,
so two fresh machines run the same code. After a change to the dependencies in
`pyproject.toml`, `make lock` pins them again; until then this test names what is out
of date.
"""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from config.settings import PROJECT_ROOT

LOCK = PROJECT_ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ \\]+) \\$")


def pins() -> dict[str, tuple[str, list[str], list[str]]]:
    """Each locked package: its version, its hashes, and what asked for it (`# via`)."""
    found: dict[str, tuple[str, list[str], list[str]]] = {}
    current: str | None = None
    for line in LOCK.read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match[1])
            found[current] = (match[2], [], [])
        elif current and (digest := re.match(r"\s+--hash=sha256:([0-9a-f]{64})", line)):
            found[current][1].append(digest[1])
        elif current and (via := re.match(r"\s+#\s+(?:via\s+)?(\S.*)$", line)):
            found[current][2].append(via[1].strip())
    return found


def requirements() -> list[Requirement]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    asked = [*project["project"]["dependencies"],
             *project["project"]["optional-dependencies"]["dev"], *build]
    return [Requirement(r) for r in asked]


def test_every_requirement_is_pinned_to_a_version_it_allows() -> None:
    locked = pins()
    stale = [f"{r}: locked {locked[n][0]}" if n in locked else f"{r}: not in the lock"
             for r in requirements()
             if (n := canonicalize_name(r.name)) not in locked
             or not r.specifier.contains(locked[n][0], prereleases=True)]
    assert stale == [], "requirements.lock is out of date with pyproject.toml; run make lock"


def test_every_pin_has_hashes_and_a_reason_to_be_there() -> None:
    locked = pins()
    assert len(locked) > 50  # the parse found the lock's entries
    assert [name for name, (_, hashes, _) in locked.items() if not hashes] == []
    direct = {canonicalize_name(r.name) for r in requirements()}
    asked_by_project = {name for name, (_, _, via) in locked.items()
                        if any(v.startswith("changeflow") for v in via)}
    assert asked_by_project - direct == set(), (
        "pinned for the project but no longer asked for in pyproject.toml; run make lock")
