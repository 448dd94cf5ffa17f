"""Finding the processes a test started, by what their command lines say."""

from __future__ import annotations

from pathlib import Path


def processes_mentioning(*words: str) -> list[int]:
    """Live processes whose command line holds every one of `words`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").replace("\0", " ")
        except OSError:
            continue
        if all(w in args for w in words):
            found.append(int(cmdline.parent.name))
    return found
