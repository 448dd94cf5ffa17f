"""Production credentials used in development or test (policy section 6).

"Using production credentials in development or test environments" is a prohibited
practice. Given one service's configuration per environment, this module finds two signs
of it in every environment other than production:

- **shared_with_production**: a variable holds the same value as a production variable,
  and a name on either side looks like a secret (`DB_PASSWORD`, `API_KEY`, `SENTRY_DSN`,
  ...). Values shorter than `MIN_SECRET_LENGTH`, booleans and numbers are never compared:
  they are not credentials and would match by chance.
- **points_at_production**: a variable's name has a `PROD` or `PRODUCTION` word part
  (`PROD_DB_PASSWORD`, `DB_PROD_URL`, but not `PRODUCT_ID`), or its value refers to
  production: a URL or connection string whose host has such a word part
  (`db.prod.internal`, `prod-db.example.com`, but not `products-api.example.com`), or a
  secret reference whose path does (Vault, AWS ARNs, Google Secret Manager, `{{ ... }}`
  templates such as Prefect's secret blocks, `${...}` variable references).

Values are compared by fingerprint, never as text: an HMAC-SHA256 of the value under a
key drawn at random for each audit run (for instance `secrets.token_bytes(32)`) and then
forgotten. Within a run equal values have equal fingerprints, so reuse is found; outside
it a fingerprint is useless: without the key it cannot be checked against a guessed
password, and the next run's fingerprints of the same value differ, so they cannot be
linked across runs either. Even so, fingerprints are only compared in memory. A finding
carries environment and variable names and a sentence, never a value or a fingerprint,
and no error raised here quotes a value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Literal

from domain.models import Frozen

SECRET_NAME = re.compile(
    r"(?i)(secret|password|passwd|token|api_?key|private_?key|credential|dsn"
    r"|conn(ection)?_?str)"
)
"""A variable name that looks like it holds a credential."""

MIN_SECRET_LENGTH = 8
"""Shorter values are not compared: too short to be a credential, too likely to collide."""

MIN_KEY_LENGTH = 16
"""The fingerprint key must have at least this many (random) bytes."""

PRODUCTION_WORDS = frozenset({"prod", "production"})
"""Word parts that name production."""

NOT_PRODUCTION_PREFIXES = frozenset({"pre", "non"})
"""Word parts that, just before `prod`, name something else (`pre-prod`, `non_prod`)."""

_WORD_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
_BOOLEANS = frozenset({"true", "false", "yes", "no", "on", "off", "enabled", "disabled"})

_URL_AUTHORITY = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://([^/?#\s\"']*)")
_CONNECTION_HOST = re.compile(
    r"(?i)(?:^|[\s;])(?:host|hostname|hostaddr|server|address|addr|data source)"
    r"\s*=\s*(?:tcp:)?([^\s;,]+)"
)
_VAULT = re.compile(r"(?i)(?:^|\s)vault:(\S+)")
_ARN = re.compile(r"\barn:[\w-]+:[\w-]+:[\w-]*:\d*:(\S+)")
_GOOGLE_SECRET = re.compile(r"\bprojects/[^/\s]+/secrets/[^/\s]+")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class CredentialFinding(Frozen):
    """A sign that a non-production environment uses a production credential.

    Attributes:
        kind: `shared_with_production` (a value equal to a production variable's) or
            `points_at_production` (a name or a reference that names production).
        environment: the non-production environment where it was found.
        names: the variables involved, sorted; production's are written
            `<production>:<NAME>`, e.g. `("DB_PASSWORD", "production:DB_PASSWORD")`.
        reason: a sentence for the audit record, with names only, never a value.
    """

    kind: Literal["shared_with_production", "points_at_production"]
    environment: str
    names: tuple[str, ...]
    reason: str


def find_production_credentials(
    configs: Mapping[str, Mapping[str, str]],
    production: str = "production",
    *,
    key: bytes,
) -> list[CredentialFinding]:
    """Every sign of production credentials in the non-production configurations.

    Args:
        configs: one service's variables by environment name, production included.
        production: the name of the production environment in `configs`.
        key: a fresh random key for this audit run (at least `MIN_KEY_LENGTH` bytes),
            under which values are fingerprinted; see the module docstring.

    Returns:
        The findings ordered by environment, kind and names. A shared value is one
        finding per environment, naming every variable on both sides that holds it; a
        variable that points at production is one finding, giving every reason.

    Raises:
        ValueError: the key is too short, or `configs` has no `production` environment
            (without it nothing can be compared, and an empty result would read as
            "clean").
    """
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"the fingerprint key must have at least {MIN_KEY_LENGTH} bytes")
    if production not in configs:
        raise ValueError(f"there is no {production!r} configuration to compare with")
    production_fingerprints = _fingerprints(configs[production], key)
    findings: list[CredentialFinding] = []
    for environment, variables in configs.items():
        if environment == production:
            continue
        findings.extend(_shared_values(environment, variables, production,
                                       production_fingerprints, key))
        findings.extend(_pointers(environment, variables))
    return sorted(findings, key=lambda f: (f.environment, f.kind, f.names))


def looks_secret(name: str) -> bool:
    """Whether a variable's name says it holds a credential."""
    return SECRET_NAME.search(name) is not None


def is_comparable(value: str) -> bool:
    """Whether a value could be a credential: long enough, not a boolean or a number."""
    text = value.strip()
    return (len(text) >= MIN_SECRET_LENGTH and text.lower() not in _BOOLEANS
            and not _NUMBER.match(text))


def word_parts(text: str) -> list[str]:
    """The lower-cased words of a name, host or path.

    Words are separated by anything but letters and digits, by letter/digit boundaries
    and by camel case: `DB_PROD_URL`, `db.prod.internal` and `dbProdUrl` all contain
    `prod`, while `PRODUCT_ID` and `products-api` contain `product(s)`.
    """
    return [part.lower() for part in _WORD_PART.findall(text)]


def names_production(text: str) -> bool:
    """Whether `text` has a `prod`/`production` word part (not `pre-prod`, `non_prod`)."""
    parts = word_parts(text)
    return any(
        part in PRODUCTION_WORDS and (i == 0 or parts[i - 1] not in NOT_PRODUCTION_PREFIXES)
        for i, part in enumerate(parts)
    )


def _fingerprint(value: str, key: bytes) -> bytes:
    """HMAC-SHA256 of the value under the run's key; only ever compared in memory."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).digest()


def _fingerprints(variables: Mapping[str, str], key: bytes) -> dict[bytes, list[str]]:
    """The names holding each comparable value, by the value's fingerprint."""
    holders: dict[bytes, list[str]] = defaultdict(list)
    for name, value in variables.items():
        if is_comparable(value):
            holders[_fingerprint(value, key)].append(name)
    return holders


def _shared_values(environment: str, variables: Mapping[str, str], production: str,
                   production_fingerprints: Mapping[bytes, list[str]],
                   key: bytes) -> Iterator[CredentialFinding]:
    """One finding per production value that `environment` also holds as a secret.

    The value counts as a secret when any variable holding it, here or in production,
    has a secret-looking name: `DB_PW` in staging equal to production's `DB_PASSWORD`
    is found, two equal `BASE_URL`s are not.
    """
    for fingerprint, here in _fingerprints(variables, key).items():
        there = production_fingerprints.get(fingerprint)
        if not there or not any(looks_secret(name) for name in [*here, *there]):
            continue
        names = tuple(sorted([*here, *(f"{production}:{name}" for name in there)]))
        yield CredentialFinding(
            kind="shared_with_production",
            environment=environment,
            names=names,
            reason=(f"{environment}: {_listing(here)} {_verb(here)} the same value as "
                    f"{production}'s {_listing(there)} (compared by keyed fingerprint); "
                    "a production credential must not be used outside production"),
        )


def _pointers(environment: str,
              variables: Mapping[str, str]) -> Iterator[CredentialFinding]:
    """One finding per variable whose name or value points at production."""
    for name in sorted(variables):
        reasons = _pointer_reasons(name, variables[name])
        if reasons:
            yield CredentialFinding(
                kind="points_at_production",
                environment=environment,
                names=(name,),
                reason=f"{environment}: {name} points at production: {'; '.join(reasons)}",
            )


def _pointer_reasons(name: str, value: str) -> list[str]:
    """Why a variable points at production, in words that never quote its value."""
    reasons = []
    if names_production(name):
        reasons.append("its name has a PROD or PRODUCTION word part")
    for description, extract in _REFERENCE_FORMS:
        if any(names_production(part) for part in extract(value)):
            reasons.append(f"its value is {description}")
    return reasons


def _url_hosts(value: str) -> Iterator[str]:
    """The hosts of every URL in the value (the user and password are dropped)."""
    for match in _URL_AUTHORITY.finditer(value):
        authority = match.group(1).rpartition("@")[2]
        for host in authority.split(","):
            yield re.sub(r":\d*\Z", "", host)


def _groups(pattern: re.Pattern[str]) -> Callable[[str], Iterable[str]]:
    """The text of every match of `pattern` (its first group if it has one)."""
    group = 1 if pattern.groups else 0
    return lambda value: (match.group(group) for match in pattern.finditer(value))


_REFERENCE_FORMS: tuple[tuple[str, Callable[[str], Iterable[str]]], ...] = (
    ("a URL whose host names production", _url_hosts),
    ("a connection string whose host names production", _groups(_CONNECTION_HOST)),
    ("a Vault reference to a production path", _groups(_VAULT)),
    ("an AWS ARN whose resource names production", _groups(_ARN)),
    ("a Google Secret Manager reference naming production", _groups(_GOOGLE_SECRET)),
    ("a template reference naming production", _groups(_TEMPLATE)),
    ("a reference to a production variable", _groups(_VARIABLE)),
)
"""Ways a value refers to something elsewhere, each with the parts that name a target."""


def _listing(names: Iterable[str]) -> str:
    """Names as `A`, `A and B` or `A, B and C`, sorted."""
    ordered = sorted(names)
    if len(ordered) == 1:
        return ordered[0]
    return f"{', '.join(ordered[:-1])} and {ordered[-1]}"


def _verb(names: list[str]) -> str:
    """`holds` or `hold`, agreeing with the number of names."""
    return "holds" if len(names) == 1 else "hold"
