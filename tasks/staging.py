"""Policy section 2, step 3: deploy to staging and run the tests there."""

from __future__ import annotations

from domain.events import EventType
from domain.models import ChangeRequest
from integrations.factory import Adapters
from tasks.commands import environment, run_command
from tasks.common import ChangeStopped, last_of, record, step
from tasks.tickets import tell


@step("test-in-staging")
def test_in_staging(a: Adapters, change: ChangeRequest) -> list[dict[str, object]]:
    """Deploy the version to staging and run its tests; failures stop the change.

    A run killed while testing left `staging_started` without a result: the next run
    tests again (a staging deploy and its tests are safe to repeat) without recording a
    second start, which the state machine would refuse.

    Raises:
        ChangeStopped: the staging deploy or a test failed; the failures are on the ticket.
    """
    spec = environment(a, change, "staging")
    if last_of(a, change, EventType.STAGING_STARTED) is None:
        record(a, change.id, EventType.STAGING_STARTED, version=change.version)
    results: list[dict[str, object]] = []
    deployed = run_command(a, change, "deploy-staging", spec.deploy, environment="staging")
    results.append({"name": "deploy", "ok": deployed.ok, "exit_code": deployed.exit_code,
                    "output": (deployed.stderr or deployed.stdout)[-500:]})
    if deployed.ok:
        for test in spec.tests:
            done = run_command(a, change, f"test:{test.name}", test, environment="staging")
            results.append({"name": test.name, "ok": done.ok, "exit_code": done.exit_code,
                            "output": (done.stdout + done.stderr)[-500:]})
    failed = [r for r in results if not r["ok"]]
    if failed:
        record(a, change.id, EventType.STAGING_FAILED, results=results)
        lines = [f"- {r['name']}: exit {r['exit_code']}: {str(r['output']).strip()}"
                 for r in failed]
        tell(a, change.id, "Staging validation failed; the change stops here:\n"
             + "\n".join(lines), "failed")
        raise ChangeStopped(f"{change.id}: staging failed: "
                            + "; ".join(str(r["name"]) for r in failed))
    record(a, change.id, EventType.STAGING_PASSED, results=results)
    return results
