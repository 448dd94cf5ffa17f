"""Policy section 2, steps 5 and 6: deploy to production and verify it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

from domain.events import DeploymentStarted, EffectFinished, EffectStarted, EventType, payload_of
from domain.models import ChangeEvent, ChangeRequest
from integrations.factory import Adapters
from tasks.commands import environment, run_checks, run_command
from tasks.common import events_of, last_of, record, step


def previous_version(a: Adapters, change: ChangeRequest) -> str:
    """What a rollback returns to: the last version that succeeded, else the baseline.

    Once the deployment started, the version it recorded; before, the version of the
    service's change whose verification passed last.
    """
    started = last_of(a, change, EventType.DEPLOYMENT_STARTED)
    if started is not None:
        return payload_of(started, DeploymentStarted).previous_version
    good = a.change_log.last_succeeded(change.service, excluding=change.id)
    if good is not None:
        return str(good.version)
    return str(a.config.services.services[change.service].baseline_version or "")


LEASE_SECONDS = 60
_ensured: set[tuple[str | None, str]] = set()
"""(server, limit) pairs this process has seen exist; a limit deleted later makes
`strict` fail, never run unlimited."""


@contextmanager
def deploy_slot(service: str) -> Iterator[None]:
    """Hold the service's deployment slot: two changes to one service never deploy at once.

    The global concurrency limit `deploy-<service>` (limit 1) is created when missing;
    `strict` makes a missing limit an error instead of running unlimited. The slot's lease
    is the server's shortest (60 s, renewed while the holder lives), so a run killed while
    holding it blocks the service's next deployment for a minute at most.
    """
    name = f"deploy-{service}"
    known = (PREFECT_API_URL.value(), name)
    if known not in _ensured:
        with get_client(sync_client=True) as client:
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                try:
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=1))
                except ObjectAlreadyExists:
                    pass  # another run created it meanwhile
        _ensured.add(known)
    with concurrency(name, occupy=1, strict=True, lease_duration=LEASE_SECONDS):
        yield


@step("deploy-to-production")
def deploy_to_production(a: Adapters, change: ChangeRequest, previous: str,
                         resume: bool = False) -> bool:
    """Deploy under the service's concurrency limit; intent recorded before, outcome after.

    With `resume`, `deployment_started` is already recorded by a run that died before the
    deploy command was started: run it now, the first and only time.
    """
    spec = environment(a, change, "production")
    if not resume:
        record(a, change.id, EventType.DEPLOYMENT_STARTED, change.author, environment="production",
               version=change.version, previous_version=previous)
    done = run_command(a, change, "deploy-production", spec.deploy, environment="production",
                       previous_version=previous)
    record(a, change.id, EventType.DEPLOYMENT_SUCCEEDED if done.ok else EventType.DEPLOYMENT_FAILED,
           version=change.version, exit_code=done.exit_code, timed_out=done.timed_out)
    return done.ok


def deploy_command_record(
        a: Adapters, change: ChangeRequest) -> tuple[ChangeEvent | None, ChangeEvent | None]:
    """The production deploy command's intent and outcome since `deployment_started`.

    (None, None) if the command was never started; an outcome of None if it never ended.
    """
    events = events_of(a, change)
    since = max((e.seq for e in events if e.type == EventType.DEPLOYMENT_STARTED), default=0)
    intents = [e for e in events if e.type == EventType.EFFECT_STARTED and e.seq > since
               and payload_of(e, EffectStarted).action == "deploy-production"]
    if not intents:
        return None, None
    effect = payload_of(intents[-1], EffectStarted).effect_id
    outcome = next((e for e in events if e.type == EventType.EFFECT_FINISHED
                    and payload_of(e, EffectFinished).effect_id == effect), None)
    return intents[-1], outcome


def recover_deployment(a: Adapters, change: ChangeRequest, previous: str) -> bool:
    """Finish a deployment whose run died after `deployment_started`; True if verified.

    What the change log holds decides: a deploy command never started is run now (its
    intent is written before it starts, so none means it never ran); one that finished
    has its recorded outcome taken; only one that may or may not have finished is judged
    by what the checks find running.
    """
    intent, outcome = deploy_command_record(a, change)
    if intent is None:
        return deploy_to_production(a, change, previous, resume=True) \
            and verify_production(a, change)
    if outcome is None:
        return verify_production(a, change, recovered=True)
    finished = payload_of(outcome, EffectFinished)
    ok, result = finished.ok, finished.result
    record(a, change.id, EventType.DEPLOYMENT_SUCCEEDED if ok else EventType.DEPLOYMENT_FAILED,
           version=change.version, exit_code=result["exit_code"],
           timed_out=result["timed_out"], recovered=True,
           note="the run died after the deploy command ended; its recorded outcome "
                "is taken")
    return ok and verify_production(a, change)


@step("verify-production")
def verify_production(a: Adapters, change: ChangeRequest, recovered: bool = False) -> bool:
    """Smoke checks and monitors; records the verdict with every check's result.

    With `recovered`, the deploy's outcome was never recorded (the run was killed): what
    the checks see decides, and the record says so.
    """
    results = run_checks(a, environment(a, change, "production"), change.version)
    ok = all(r.passed for r in results) and bool(results)
    checks = [r.model_dump(mode="json") for r in results]
    if recovered and ok:
        record(a, change.id, EventType.DEPLOYMENT_SUCCEEDED, version=change.version, recovered=True,
               note="the deploy's outcome was not recorded; the checks find it deployed")
    if ok or not recovered:
        record(a, change.id, EventType.VERIFICATION_PASSED if ok else EventType.VERIFICATION_FAILED,
               checks=checks)
    return ok
