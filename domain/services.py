"""The service catalog: what runs in staging and production, keyed by service.

Tickets are never executed. A ticket names a service and a version; the commands and
checks come from here, with a fixed set of placeholders filled in from validated values.
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, HttpUrl, field_validator

from domain.models import Frozen

PLACEHOLDERS = frozenset(
    {"python", "service", "environment", "version", "previous_version", "var_dir"})
"""What a command argument may refer to as `{name}`."""

Environment = Literal["staging", "production"]


class Command(Frozen):
    """A command run as a subprocess (an argv list: no shell)."""

    argv: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(default=300, gt=0)

    @field_validator("argv")
    @classmethod
    def _known_placeholders(cls, argv: list[str]) -> list[str]:
        for arg in argv:
            for _, name, _, _ in string.Formatter().parse(arg):
                if name is not None and name not in PLACEHOLDERS:
                    raise ValueError(f"unknown placeholder {{{name}}} in {arg!r} "
                                     f"(known: {', '.join(sorted(PLACEHOLDERS))})")
        return argv

    def render(self, values: dict[str, str]) -> list[str]:
        """The argv with placeholders filled in."""
        return [arg.format(**values) for arg in self.argv]


class NamedCommand(Command):
    """A test suite run as a command."""

    name: str


class HttpCheck(Frozen):
    """An HTTP check: GET the URL, expect the status and, if given, a substring.

    `{version}` in `contains` is the version that should be running (the change's after a
    deploy, the previous one after a rollback).
    """

    name: str
    url: HttpUrl
    expect_status: int = Field(default=200, ge=100, le=599)
    contains: str | None = None
    timeout_seconds: float = Field(default=10, gt=0)


class EnvironmentSpec(Frozen):
    """How to deploy, roll back, test and check a service in one environment."""

    deploy: Command
    rollback: Command
    tests: list[NamedCommand] = []
    smoke_checks: list[HttpCheck] = []
    monitors: list[HttpCheck] = []


class Service(Frozen):
    """One deployable service."""

    description: str = ""
    owner: str | None = None
    baseline_version: str | None = Field(
        default=None, description="The version running before changeflow managed the service: "
                                  "what a first change rolls back to")
    environments: dict[Environment, EnvironmentSpec]
    repository: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="The code host repository (owner/name) whose pull requests and "
                    "deployments are this service's")
    production_environment: str = Field(
        default="production", min_length=1,
        description="The code host's name for this service's production environment")
    required_checks: list[str] = Field(
        default=[], description="Checks that must succeed on the final commit when branch "
                                "protection does not list them")
    version_ref: str = Field(
        default="v{version}", pattern=r"\{version\}",
        description="The code host's name (a tag or branch) for a deploy version; "
                    "{version} is the change's version. With a code host it must resolve to "
                    "the reviewed pull request's final or merge commit")
    deploy_record: str | None = Field(
        default=None, description="The deploy command's own record of what it deployed (JSON "
                                  "lines: environment, version, deployed_at); {var_dir} "
                                  "may be used. The practices audit compares it with the log")
    config_files: dict[str, str] = Field(
        default={}, description="Each environment's configuration as a KEY=VALUE file "
                                "(relative to the config folder), for the credentials audit")

    @field_validator("environments")
    @classmethod
    def _both(cls, envs: dict[Environment, EnvironmentSpec]) -> dict[Environment, EnvironmentSpec]:
        missing = [e for e in ("staging", "production") if e not in envs]
        if missing:
            raise ValueError(f"missing environment(s): {', '.join(missing)}")
        return envs


class ServiceCatalog(Frozen):
    """Every service changeflow may deploy."""

    services: dict[str, Service]
