"""Which changes need Security's review (policy section 2, step 2).

"Security reviews the risk for changes that affect authentication, data access or
encryption." The policy file lists, per area, the labels, components and path patterns
that mark a change as affecting it; this module says which of them a change matches, and
why, so the reason can be shown to the author and recorded as evidence.
"""

from __future__ import annotations

import re
from functools import lru_cache

from domain.models import ChangeRequest
from domain.policy import Policy


@lru_cache(maxsize=512)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob where `*` stays inside one directory and `**` crosses them.

    `fnmatch` lets `*` match `/`, which would make `*.sql` match `a/b/c.sql` and hide
    mistakes in the policy's patterns. The rules here are the usual ones (gitignore-like):

    - `**/` matches zero or more whole directories (`**/auth/**` matches `auth/x.py`);
    - a trailing `/**` matches everything below the directory;
    - any other `**` matches anything, `/` included;
    - `*` matches any run of characters except `/`, `?` one such character;
    - `[abc]`, `[a-z]` and `[!abc]` are character classes (never matching `/`).

    Args:
        pattern: the glob, with `/` as separator.

    Returns:
        A regex to use with `fullmatch` on a normalised path (see `path_matches`).
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            else:
                out.append(".*")
                i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (close := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1:close]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            body = "".join(f"\\{ch}" if ch in "\\^[&~|" else ch for ch in body)
            out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
            i = close + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out))


def normalise_path(path: str) -> str:
    """A repository path as patterns expect it: `/` separators, no leading `./` or `/`."""
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")


def path_matches(path: str, pattern: str) -> bool:
    """True when the repository-relative `path` matches the glob `pattern`."""
    return glob_to_regex(pattern).fullmatch(normalise_path(path)) is not None


@lru_cache(maxsize=65536)
def path_or_parent_matches(path: str, pattern: str) -> bool:
    """True when `path`, or a directory containing it, matches `pattern`.

    As in `.gitignore`, a pattern that names a directory covers everything inside it:
    `**/oauth*` marks `src/oauth/client.py`, not only `src/oauth_client.py`. For a
    trigger of Security's review, matching more is the safe direction.
    """
    parts = normalise_path(path).split("/")
    return any(path_matches("/".join(parts[:end]), pattern)
               for end in range(len(parts), 0, -1))


def security_review_reasons(change: ChangeRequest, policy: Policy) -> list[str]:
    """Why `change` affects a security-sensitive area; empty means no review is needed.

    Labels and components match case-insensitively and exactly; changed paths match the
    area's glob patterns (`path_matches`). Each match gives one reason, in policy order
    of areas, then labels, components, paths; for a path only its first matching pattern
    is named, and a pattern matching one of the path's directories counts
    (`path_or_parent_matches`).

    This rule does not look at the category: whether a category gets a Security review
    at all is `domain.approvals`' decision.

    Args:
        change: the change request.
        policy: the policy, whose `security_review.areas` list the markers.

    Returns:
        Reasons such as `"authentication: label 'sso' matched"` or
        `"data_access: path 'db/migrations/001.sql' matched pattern '**/migrations/**'"`.
    """
    labels = {label.casefold(): label for label in change.labels}
    components = {comp.casefold(): comp for comp in change.components}
    reasons: list[str] = []
    for area, markers in policy.security_review.areas.items():
        for label in markers.labels:
            if label.casefold() in labels:
                reasons.append(f"{area}: label {labels[label.casefold()]!r} matched")
        for comp in markers.components:
            if comp.casefold() in components:
                reasons.append(f"{area}: component {components[comp.casefold()]!r} matched")
        for path in change.changed_paths:
            hit = next((p for p in markers.paths if path_or_parent_matches(path, p)), None)
            if hit is not None:
                reasons.append(f"{area}: path {path!r} matched pattern {hit!r}")
    return reasons
