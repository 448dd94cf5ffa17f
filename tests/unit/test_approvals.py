from __future__ import annotations

import re
from typing import Any

import pytest

from domain.approvals import (
    SECURITY_REVIEW_CATEGORIES,
    check_approvals,
    eligible_approvers,
    ineligibility,
    required_approvals,
)
from domain.models import Category, Decision, Person
from domain.policy import ApprovalRequirement
from tests.unit.conftest import approval, make_change, with_people

PAT = Person(id="pat", name="Pat Both", email="pat@example.com",
             roles=frozenset({"engineering_lead", "qa"}))
LEADBOT = Person(id="leadbot", name="Lead Bot", email="leadbot@example.com",
                 roles=frozenset({"engineering_lead"}), shared_account=True)

NORMAL, STANDARD, MAJOR, EMERGENCY = (Category.NORMAL, Category.STANDARD, Category.MAJOR,
                                      Category.EMERGENCY)
DECLINE = Decision.DECLINE
VERBAL: dict[str, Any] = {"channel": "verbal", "recorded_by": "oscar"}
DUTY_WORDS = re.compile(r"separation of duties|shared account|one person per role|"
                        r"recorded by someone else")
"""What the reasons say when an approval breaks separation of duties (`duties`)."""

# (id, change overrides, approvals, satisfied, declined, missing, problems, approvers)
CASES = [
    ("normal-ok", {}, [approval("engineering_lead", "erin"), approval("qa", "quinn")],
     True, False, [], [], {"engineering_lead": "erin", "qa": "quinn"}),
    ("none-given", {}, [], False, False, ["engineering_lead", "qa"], [], {}),
    ("author-approves-own-normal", {"author": "erin"},
     [approval("engineering_lead", "erin"), approval("qa", "quinn")],
     False, False, ["engineering_lead"],
     ["Erin Lead (erin) is the change's author and cannot approve it as "
      "'engineering_lead' (separation of duties)"], {"qa": "quinn"}),
    ("a-contributor-approves", {"contributors": ["erin"]},
     [approval("engineering_lead", "erin"), approval("qa", "quinn")],
     False, False, ["engineering_lead"],
     ["Erin Lead (erin) wrote code in the change's pull request and cannot approve it as "
      "'engineering_lead' (separation of duties)"], {"qa": "quinn"}),
    ("a-contributor-records-a-verbal-approval", {"category": EMERGENCY,
                                                 "contributors": ["oscar"]},
     [approval("ciso", "carol", **VERBAL)], False, False, ["ciso"],
     ["Carol Chen (carol)'s verbal approval as 'ciso' cannot be recorded by oscar, who "
      "wrote the change: two people other than its writers must take part (separation of "
      "duties)"], {}),
    ("standard-self-approval-by-author", {"category": STANDARD},
     [approval("engineer", "alice")], True, False, [], [], {"engineer": "alice"}),
    ("standard-self-approval-by-other", {"category": STANDARD},
     [approval("engineer", "bob")], False, False, ["engineer"],
     ["Bob Nguyen (bob) cannot give the self-approval as 'engineer': only the change's "
      "author (alice) can"], {}),
    ("standard-shared-author", {"category": STANDARD, "author": "deploybot"},
     [approval("engineer", "deploybot")], False, False, ["engineer"],
     ["Deploy Bot (deploybot) is a shared account and cannot approve as 'engineer' "
      "(every approval must be attributable to one person)"], {}),
    ("shared-account", {},
     [approval("engineering_lead", "leadbot"), approval("qa", "quinn")],
     False, False, ["engineering_lead"],
     ["Lead Bot (leadbot) is a shared account and cannot approve as 'engineering_lead' "
      "(every approval must be attributable to one person)"], {"qa": "quinn"}),
    ("same-person-two-roles", {},
     [approval("engineering_lead", "pat", minutes=1), approval("qa", "pat", minutes=2)],
     False, False, ["qa"],
     ["Pat Both (pat) already approved as 'engineering_lead' and cannot also approve as "
      "'qa' (one person per role)"], {"engineering_lead": "pat"}),
    ("same-person-two-roles-taken-in-time-order", {},
     [approval("qa", "pat", minutes=5), approval("engineering_lead", "pat", minutes=1)],
     False, False, ["qa"],
     ["Pat Both (pat) already approved as 'engineering_lead' and cannot also approve as "
      "'qa' (one person per role)"], {"engineering_lead": "pat"}),
    ("decline", {},
     [approval("engineering_lead", "erin"), approval("qa", "quinn", DECLINE,
                                                     comment="staging is flaky")],
     False, True, ["qa"], ["Quinn Tester (quinn) declined as 'qa': staging is flaky"],
     {"engineering_lead": "erin"}),
    ("decline-overrides-earlier-approval", {},
     [approval("engineering_lead", "erin", minutes=1), approval("qa", "quinn", minutes=2),
      approval("engineering_lead", "erin", DECLINE, minutes=3)],
     False, True, [], ["Erin Lead (erin) declined as 'engineering_lead'"],
     {"engineering_lead": "erin", "qa": "quinn"}),
    ("decline-by-ineligible-still-stops", {},
     [approval("engineering_lead", "erin"), approval("qa", "quinn"),
      approval("qa", "bob", DECLINE)],
     False, True, [],
     ["Bob Nguyen (bob) declined as 'qa' (not an eligible approver: Bob Nguyen (bob) "
      "does not hold role 'qa')"], {"engineering_lead": "erin", "qa": "quinn"}),
    ("unknown-person", {}, [approval("engineering_lead", "erin"), approval("qa", "zed")],
     False, False, ["qa"], ["'zed' approved as 'qa' but is not in the roster"],
     {"engineering_lead": "erin"}),
    ("role-not-held", {}, [approval("engineering_lead", "bob"), approval("qa", "quinn")],
     False, False, ["engineering_lead"], ["Bob Nguyen (bob) does not hold role "
                                          "'engineering_lead'"], {"qa": "quinn"}),
    ("major-ok", {"category": MAJOR},
     [approval("engineering_lead", "erin"), approval("ciso", "carol")],
     True, False, [], [], {"engineering_lead": "erin", "ciso": "carol"}),
    ("major-role-not-needed", {"category": MAJOR},
     [approval("engineering_lead", "erin"), approval("qa", "quinn")],
     False, False, ["ciso"],
     ["Quinn Tester (quinn) approved as 'qa', a role this change does not need "
      "(needed: engineering_lead, ciso)"], {"engineering_lead": "erin"}),
    ("normal-security-needed", {"changed_paths": ["src/auth/login.py"]},
     [approval("engineering_lead", "erin"), approval("qa", "quinn")],
     False, False, ["security"], [], {"engineering_lead": "erin", "qa": "quinn"}),
    ("normal-security-given", {"labels": ["pii"]},
     [approval("engineering_lead", "erin"), approval("qa", "quinn"),
      approval("security", "sam")],
     True, False, [], [], {"engineering_lead": "erin", "qa": "quinn", "security": "sam"}),
    ("emergency-ciso-verbal", {"category": EMERGENCY},
     [approval("ciso", "carol", **VERBAL)], True, False, [], [], {"ciso": "carol"}),
    ("emergency-verbal-recorded-by-the-approver", {"category": EMERGENCY},
     [approval("ciso", "carol", channel="verbal", recorded_by="carol")], False, False, ["ciso"],
     ["Carol Chen (carol)'s verbal approval as 'ciso' must be recorded by someone else, who "
      "heard it (the approver confirms it afterwards)"], {}),
    ("emergency-verbal-recorded-by-the-author", {"category": EMERGENCY},
     [approval("ciso", "carol", channel="verbal", recorded_by="alice")], False, False,
     ["ciso"], ["Carol Chen (carol)'s verbal approval as 'ciso' cannot be recorded by "
                "alice, who wrote the change: two people other than its writers must take "
                "part (separation of duties)"], {}),
    ("emergency-verbal-recorded-without-a-recorder-role", {"category": EMERGENCY},
     [approval("ciso", "carol", channel="verbal", recorded_by="bob")], False, False,
     ["ciso"], ["the recorder Bob Nguyen (bob) holds none of the recorder roles "
                "(engineering_lead, on_call; policy emergency.recorder_roles)"], {}),
    ("emergency-verbal-recorded-by-a-shared-account", {"category": EMERGENCY},
     [approval("ciso", "carol", channel="verbal", recorded_by="deploybot")], False, False,
     ["ciso"], ["the recorder Deploy Bot (deploybot) is a shared account (a recording must "
                "be attributable)"], {}),
    ("emergency-verbal-recorded-by-a-stranger", {"category": EMERGENCY},
     [approval("ciso", "carol", channel="verbal", recorded_by="mallory")], False, False,
     ["ciso"], ["the recorder 'mallory' is not in the roster"], {}),
    ("emergency-verbal-no-recorder", {"category": EMERGENCY},
     [approval("ciso", "carol", channel="verbal")], False, False, ["ciso"],
     ["Carol Chen (carol)'s verbal approval as 'ciso' must be recorded by someone else, who "
      "heard it (the approver confirms it afterwards)"], {}),
    ("emergency-ciso-not-verbal", {"category": EMERGENCY}, [approval("ciso", "carol")],
     False, False, ["ciso"],
     ["Carol Chen (carol) approved as 'ciso' via 'ui', but this approval must be given "
      "verbally (channel 'verbal')"], {}),
    ("emergency-fallback-without-reason", {"category": EMERGENCY},
     [approval("engineering_lead", "erin", **VERBAL)], False, False, ["ciso"],
     ["Erin Lead (erin) approved as 'engineering_lead' in place of 'ciso' without a "
      "fallback_reason (why the ciso was unavailable)"], {}),
    ("emergency-fallback-blank-reason", {"category": EMERGENCY},
     [approval("engineering_lead", "erin", fallback_reason="  ", **VERBAL)],
     False, False, ["ciso"],
     ["Erin Lead (erin) approved as 'engineering_lead' in place of 'ciso' without a "
      "fallback_reason (why the ciso was unavailable)"], {}),
    ("emergency-fallback-with-reason", {"category": EMERGENCY},
     [approval("engineering_lead", "erin", fallback_reason="CISO on a flight", **VERBAL)],
     True, False, [], [], {"ciso": "erin"}),
    ("emergency-fallback-author", {"category": EMERGENCY, "author": "erin"},
     [approval("engineering_lead", "erin", fallback_reason="CISO on a flight", **VERBAL)],
     False, False, ["ciso"],
     ["Erin Lead (erin) is the change's author and cannot approve it as "
      "'engineering_lead' (separation of duties)"], {}),
    ("emergency-lead-claims-ciso", {"category": EMERGENCY},
     [approval("ciso", "erin", fallback_reason="CISO on a flight", **VERBAL)],
     False, False, ["ciso"],
     ["Erin Lead (erin) does not hold role 'ciso'; a fallback approval is recorded as "
      "'engineering_lead' with a reason"], {}),
]


@pytest.mark.parametrize(
    ("overrides", "given", "satisfied", "declined", "missing", "problems", "approvers"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_check_approvals(policy, roster, overrides, given, satisfied, declined, missing,
                         problems, approvers):
    verdict = check_approvals(make_change(**overrides), given, policy,
                              with_people(roster, PAT, LEADBOT))
    assert verdict.problems == problems
    assert verdict.duties == [p for p in problems if DUTY_WORDS.search(p)]
    assert verdict.missing == missing
    assert (verdict.satisfied, verdict.declined) == (satisfied, declined)
    assert verdict.approvers == approvers


@pytest.mark.parametrize(("overrides", "decision", "expected"), [
    pytest.param({}, approval("engineering_lead", "erin", DECLINE), None, id="lead-declines"),
    pytest.param({}, approval("qa", "quinn"), None, id="qa-approves"),
    pytest.param({}, approval("qa", "bob", DECLINE),
                 "Bob Nguyen (bob) does not hold role 'qa'", id="no-role-declines"),
    pytest.param({"author": "erin"}, approval("engineering_lead", "erin", DECLINE),
                 "Erin Lead (erin) is the change's author and cannot approve it as "
                 "'engineering_lead' (separation of duties)", id="author-declines"),
    pytest.param({}, approval("engineering_lead", "leadbot"),
                 "Lead Bot (leadbot) is a shared account and cannot approve as "
                 "'engineering_lead' (every approval must be attributable to one person)",
                 id="shared-account"),
    pytest.param({}, approval("ciso", "carol"), None, id="a-role-not-needed-is-not-judged"),
])
def test_ineligibility_judges_the_person_and_role_whatever_the_decision(
        policy, roster, overrides, decision, expected):
    assert ineligibility(make_change(**overrides), decision, policy,
                         with_people(roster, PAT, LEADBOT)) == expected


@pytest.mark.parametrize(("overrides", "roles"), [
    pytest.param({"category": STANDARD, "labels": ["auth"]}, ["engineer"],
                 id="standard-never-security"),
    pytest.param({}, ["engineering_lead", "qa"], id="normal-plain"),
    pytest.param({"labels": ["SSO"]}, ["engineering_lead", "qa", "security"],
                 id="normal-label-case-insensitive"),
    pytest.param({"components": ["kms"]}, ["engineering_lead", "qa", "security"],
                 id="normal-component"),
    pytest.param({"category": MAJOR, "changed_paths": ["svc/src/auth/token.py"]},
                 ["engineering_lead", "ciso", "security"], id="major-path"),
    pytest.param({"category": EMERGENCY, "labels": ["auth"]}, ["ciso"],
                 id="emergency-never-security"),
])
def test_required_approvals(policy, overrides, roles):
    assert [r.role for r in required_approvals(make_change(**overrides), policy)] == roles


def test_security_review_categories_are_normal_and_major():
    assert frozenset({Category.NORMAL, Category.MAJOR}) == SECURITY_REVIEW_CATEGORIES


@pytest.mark.parametrize(("requirement", "author", "fallback", "expected"), [
    pytest.param(ApprovalRequirement(role="engineering_lead"), "alice", False, ["erin"],
                 id="lead"),
    pytest.param(ApprovalRequirement(role="engineering_lead"), "erin", False, [],
                 id="lead-is-author"),
    pytest.param(ApprovalRequirement(role="engineer", self_approval=True), "alice", False,
                 ["alice"], id="self-approval-only-author"),
    pytest.param(ApprovalRequirement(role="engineer", self_approval=True), "deploybot",
                 False, [], id="self-approval-shared-author"),
    pytest.param(ApprovalRequirement(role="engineer"), "alice", False,
                 ["bob", "erin", "oscar"], id="engineer-not-author-not-shared"),
    pytest.param(ApprovalRequirement(role="ciso", fallback_role="engineering_lead"),
                 "alice", True, ["erin"], id="fallback-holders"),
    pytest.param(ApprovalRequirement(role="qa"), "alice", True, [], id="no-fallback-role"),
])
def test_eligible_approvers(roster, requirement, author, fallback, expected):
    people = eligible_approvers(requirement, make_change(author=author), roster,
                                fallback=fallback)
    assert [p.id for p in people] == expected
