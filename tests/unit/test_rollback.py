from __future__ import annotations

import pytest

from domain.models import RollbackPlan
from domain.rollback import missing_rollback_fields
from tests.unit.conftest import full_plan


@pytest.mark.parametrize(("plan", "use_roster", "missing"), [
    pytest.param(full_plan(), True, [], id="complete"),
    pytest.param(RollbackPlan(), False,
                 ["trigger", "steps", "owner", "verification", "time_estimate_minutes"],
                 id="empty-in-policy-order"),
    pytest.param(full_plan(trigger=""), False, ["trigger"], id="empty-string"),
    pytest.param(full_plan(steps="  \n\t"), False, ["steps"], id="whitespace-only"),
    pytest.param(full_plan(verification=None, time_estimate_minutes=None), False,
                 ["verification", "time_estimate_minutes"], id="two-none"),
    pytest.param(full_plan(owner="zed"), False, [], id="owner-unchecked-without-roster"),
    pytest.param(full_plan(owner="zed"), True, ["owner ('zed' is not in the roster)"],
                 id="owner-not-in-roster"),
    pytest.param(full_plan(owner="deploybot"), True, ["owner ('deploybot' is a shared account)"],
                 id="owner-shared-account"),
    pytest.param(full_plan(owner=" "), True, ["owner"], id="owner-blank"),
])
def test_missing_rollback_fields(policy, roster, plan, use_roster, missing):
    assert missing_rollback_fields(plan, policy, roster if use_roster else None) == missing


def test_required_fields_come_from_the_policy(policy):
    lenient = policy.model_copy(update={
        "rollback": policy.rollback.model_copy(update={"required_fields": ["steps"]})})
    assert missing_rollback_fields(RollbackPlan(steps="redeploy"), lenient) == []
    assert missing_rollback_fields(RollbackPlan(), lenient) == ["steps"]
