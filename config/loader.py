"""Load and check the configuration files, reporting every problem with its place.

A problem reads `policy.yaml: categories.major.approvals[1]: unknown role 'cso'`: the
file, the key path, and what is wrong. Loading collects all problems of all files before
failing, so one run of `changeflow check-config` lists everything to fix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from config.jira import JiraMapping
from domain.models import Person, Roster
from domain.policy import Policy
from domain.services import ServiceCatalog

JIRA_FILE = "jira.yaml"
POLICY_FILE = "policy.yaml"
ROSTER_FILE = "roster.yaml"
SERVICES_FILE = "services.yaml"

M = TypeVar("M", bound=BaseModel)

_VALIDATOR_PREFIX = re.compile(r"^(Value error|Assertion failed), ")
"""What pydantic puts before a validator's own message; the message alone reads better."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one configuration file."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}" if self.path else \
            f"{self.file}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists why."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Config:
    """The loaded policy, roster and service catalog."""

    policy: Policy
    roster: Roster
    services: ServiceCatalog
    jira: JiraMapping | None = None
    """`jira.yaml`, when the folder has one (needed with `CHANGEFLOW_TICKETS=jira`)."""


def key_path(loc: Sequence[int | str]) -> str:
    """Render a pydantic error location as `a.b[1].c`."""
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself was invalid"
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses duplicate keys.

    PyYAML keeps the last of two equal keys without a word; in the policy that would let
    a second `major:` silently replace the first.
    """


def _unique_keys(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # keys merged in with `<<` may be overridden: that is their purpose
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # an unhashable key: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_keys)


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """`line L, column C: problem`, plus where the construct it broke began.

    PyYAML often notices a mistake a line after it was made (an unclosed `[` is reported
    where the next key starts); its context mark names the line where the construct began.
    """
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    reason = getattr(exc, "problem", None) or str(exc)
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and cmark is not None and (mark is None or cmark.line != mark.line
                                          or cmark.column != mark.column):
        reason += f" ({context} at line {cmark.line + 1}, column {cmark.column + 1})"
    return f"{where}{reason}"


def _read_yaml(path: Path) -> tuple[Any, list[Problem]]:
    name = path.name
    if not path.is_file():
        return None, [Problem(name, "", f"file not found at {path}")]
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        return None, [Problem(name, "", f"not valid YAML: {_yaml_reason(exc)}")]
    if not isinstance(data, dict):
        return None, [Problem(name, "", "must be a mapping at the top level")]
    return data, []


def _validate(model: type[M], data: Any, name: str) -> tuple[M | None, list[Problem]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err["loc"]
            msg = _VALIDATOR_PREFIX.sub("", err["msg"])
            if err["type"] == "missing":
                msg = "required field is missing"
            elif err["type"] == "extra_forbidden":
                msg = "unknown field (check its spelling)"
            elif loc and loc[-1] == "[key]":
                msg = f"invalid key: {msg}"
            problems.append(Problem(name, key_path(loc), msg))
        return None, problems


def load_policy(path: Path) -> tuple[Policy | None, list[Problem]]:
    """Load policy.yaml; return the policy (or None) and its problems."""
    data, problems = _read_yaml(path)
    if problems:
        return None, problems
    policy, problems = _validate(Policy, data, path.name)
    if policy is not None:
        problems = [Problem(path.name, p, m) for p, m in policy.problems()]
    return (policy if not problems else None), problems


def load_roster(path: Path, roles: Sequence[str] | None) -> tuple[Roster | None, list[Problem]]:
    """Load roster.yaml, checking roles against the policy's when they are known."""
    data, problems = _read_yaml(path)
    if problems:
        return None, problems
    name = path.name
    people = data.get("people")
    if not isinstance(people, list) or not people:
        return None, [Problem(name, "people", "must be a non-empty list of people")]
    found: dict[str, Person] = {}
    first_at: dict[str, int] = {}
    for i, raw in enumerate(people):
        person, errs = _validate(Person, raw, name)
        problems += [Problem(name, f"people[{i}].{e.path}" if e.path else f"people[{i}]",
                             e.message) for e in errs]
        if person is None:
            continue
        if person.id in found:
            problems.append(Problem(name, f"people[{i}].id", f"duplicate id {person.id!r} "
                                    f"(already used by people[{first_at[person.id]}])"))
        else:
            found[person.id] = person
            first_at[person.id] = i
        if roles is not None:
            known = ", ".join(roles)
            for role in sorted(person.roles - set(roles)):
                problems.append(Problem(name, f"people[{i}].roles",
                                        f"unknown role {role!r} (known: {known})"))
    return (Roster(people=found) if not problems else None), problems


def load_services(path: Path, roster: Roster | None) -> tuple[ServiceCatalog | None,
                                                               list[Problem]]:
    """Load services.yaml, checking owners against the roster when there is one."""
    data, problems = _read_yaml(path)
    if problems:
        return None, problems
    catalog, problems = _validate(ServiceCatalog, data, path.name)
    if catalog is not None and roster is not None:
        for sid, svc in catalog.services.items():
            if svc.owner is not None and roster.get(svc.owner) is None:
                problems.append(Problem(path.name, f"services.{sid}.owner",
                                        f"{svc.owner!r} is not in roster.yaml"))
    return (catalog if not problems else None), problems


def load_jira(path: Path, roles: Sequence[str] | None) -> tuple[JiraMapping | None,
                                                                 list[Problem]]:
    """Load jira.yaml, checking the approval roles against the policy's when known."""
    data, problems = _read_yaml(path)
    if problems:
        return None, problems
    mapping, problems = _validate(JiraMapping, data, path.name)
    if mapping is not None and roles is not None:
        for role in mapping.approvals.names:
            if role not in roles:
                problems.append(Problem(path.name, f"approvals.names.{role}",
                                        f"unknown role {role!r} (known: {', '.join(roles)})"))
    return (mapping if not problems else None), problems


def _role_names(path: Path, policy: Policy | None) -> list[str] | None:
    """The policy's roles, read from the raw file when the policy itself has problems."""
    if policy is not None:
        return list(policy.roles)
    data, _ = _read_yaml(path)
    roles = data.get("roles") if isinstance(data, dict) else None
    return [str(r) for r in roles] if isinstance(roles, dict) else None


def check_config(config_dir: Path) -> tuple[Config | None, list[Problem]]:
    """Load all three files; return the config when there are no problems, and the list."""
    policy, problems = load_policy(config_dir / POLICY_FILE)
    roster, more = load_roster(config_dir / ROSTER_FILE, _role_names(config_dir / POLICY_FILE,
                                                                     policy))
    problems += more
    services, more = load_services(config_dir / SERVICES_FILE, roster)
    problems += more
    jira = None
    if (config_dir / JIRA_FILE).is_file():
        jira, more = load_jira(config_dir / JIRA_FILE,
                               _role_names(config_dir / POLICY_FILE, policy))
        problems += more
    if problems or policy is None or roster is None or services is None:
        return None, problems
    return Config(policy=policy, roster=roster, services=services, jira=jira), []


def config_files(config_dir: Path) -> dict[str, bytes]:
    """The configuration files in force, as they are on disk (those that exist), by name."""
    names = (POLICY_FILE, ROSTER_FILE, SERVICES_FILE, JIRA_FILE)
    return {name: (config_dir / name).read_bytes() for name in names
            if (config_dir / name).is_file()}


def load_config(config_dir: Path) -> Config:
    """Load the configuration or raise `ConfigError` listing every problem."""
    config, problems = check_config(config_dir)
    if config is None:
        raise ConfigError(problems)
    return config
