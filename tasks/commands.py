"""Running catalog commands with their evidence: intent before, outcome after."""

from __future__ import annotations

import sys

from config.settings import PROJECT_ROOT
from domain.models import ChangeRequest, CheckResult, CommandResult
from domain.services import Command, EnvironmentSpec
from integrations.factory import Adapters
from tasks.common import SYSTEM

VERSION = "{version}"
"""In a check's `contains`: the version that should be running."""


def environment(a: Adapters, change: ChangeRequest, name: str) -> EnvironmentSpec:
    """The catalog entry of the change's service in one environment."""
    return a.config.services.services[change.service].environments[name]  # type: ignore[index]


def run_command(a: Adapters, change: ChangeRequest, action: str, command: Command,
                **values: str) -> CommandResult:
    """Run a catalog command for `change`; the intent is recorded first, the outcome after."""
    argv = command.render({"python": sys.executable, "var_dir": str(a.settings.var_dir),
                           "service": change.service, "version": change.version,
                           "previous_version": "", **values})
    effect = a.change_log.record_intent(change.id, action, SYSTEM, {"argv": argv}, a.now())
    result = a.runner.run(argv, command.timeout_seconds, cwd=PROJECT_ROOT)
    a.change_log.record_outcome(change.id, effect, SYSTEM, result.ok, {
        "exit_code": result.exit_code, "timed_out": result.timed_out,
        "seconds": round(result.duration_seconds, 3),
        "stdout": result.stdout[-2000:], "stderr": result.stderr[-2000:]}, a.now())
    return result


def run_checks(a: Adapters, spec: EnvironmentSpec, version: str) -> list[CheckResult]:
    """The environment's smoke checks and monitors, for `version` running there.

    `{version}` in a check's `contains` is that version, so a check can tell which version
    answers, and a verification never passes on the one it was meant to replace.
    """
    return [a.checks.check(check if check.contains is None else check.model_copy(
        update={"contains": check.contains.replace(VERSION, version)}))
        for check in [*spec.smoke_checks, *spec.monitors]]
