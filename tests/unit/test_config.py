from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config.loader import ConfigError, check_config, load_config
from tests.unit.conftest import CONFIG_DIR

ROLES = "engineer, engineering_lead, qa, ciso, security, on_call"
GATES = ("code_review, automated_tests, security_scan, staging_validation, rollback_plan, "
         "approval")
PLACEHOLDERS = "environment, previous_version, python, service, var_dir, version"
NORMAL_GATES = ("    gates: [code_review, automated_tests, security_scan, staging_validation, "
                "rollback_plan, approval]\n  major:")
STAGING_DEPLOY_VERSION = '"staging",\n                 "--version", "{version}"]'
CERT_GATES = "    kinds: [certificate]\n    gates: [automated_tests, rollback_plan, approval]\n"
CONFIG_GATES = "    kinds: [config]\n    gates: [automated_tests, rollback_plan, approval]\n"
DEPENDENCY_GATES = "    gates: [automated_tests, security_scan, rollback_plan, approval]\n"
STANDARD_MINIMUM = " (a standard change still needs CI, a rollback plan and its self-approval)"

Edit = tuple[str, str, str | None]  # (file, old text, new text or None to delete the file)


def broken_copy(tmp_path: Path, edits: list[Edit]) -> Path:
    """config/ copied to tmp_path with each `old` (which must occur once) replaced.

    An empty `old` replaces the whole file; a `new` of None deletes it.
    """
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    for name, old, new in edits:
        path = target / name
        if new is None:
            path.unlink()
            continue
        if not old:  # replace the whole file
            path.write_text(new, encoding="utf-8")
            continue
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} must occur exactly once in {name}"
        path.write_text(text.replace(old, new), encoding="utf-8")
    return target


def line_of(name: str, text: str) -> int:
    """The 1-based line where `text` starts in the real config file `name`."""
    content = (CONFIG_DIR / name).read_text(encoding="utf-8")
    return content[:content.index(text)].count("\n") + 1


NOTICE = line_of("policy.yaml", "  notice_hours: 24")
QA_LINE = line_of("roster.yaml", "    roles: [qa]")

# (id, edits, the exact problems, in order; "{dir}" is the broken copy's folder)
CASES: list[tuple[str, list[Edit], list[str]]] = [
    # policy.yaml
    ("policy-unknown-approver-role",
     [("policy.yaml", "      - role: engineering_lead\n      - role: ciso\n    gates",
       "      - role: engineering_lead\n      - role: cso\n    gates")],
     [f"policy.yaml: categories.major.approvals[1]: unknown role 'cso' (known: {ROLES})"]),
    ("policy-unknown-fallback-role",
     [("policy.yaml", "fallback_role: engineering_lead\n    gates",
       "fallback_role: eng_lead\n    gates")],
     [f"policy.yaml: categories.emergency.approvals[0].fallback_role: unknown role "
      f"'eng_lead' (known: {ROLES})"]),
    ("policy-unknown-gate",
     [("policy.yaml", NORMAL_GATES, NORMAL_GATES.replace("[code_review", "[code_reveiw"))],
     [f"policy.yaml: categories.normal.gates[0]: unknown gate 'code_reveiw' (known: {GATES})"]),
    ("policy-unknown-bypassable-gate",
     [("policy.yaml", "bypassable_gates: [code_review, staging_validation]",
       "bypassable_gates: [code_review, staging]")],
     [f"policy.yaml: categories.emergency.bypassable_gates[1]: unknown gate 'staging' "
      f"(known: {GATES})"]),
    ("policy-several-problems-in-one-file",
     [("policy.yaml", "      - role: engineering_lead\n      - role: ciso\n    gates",
       "      - role: engineering_lead\n      - role: cso\n    gates"),
      ("policy.yaml", "  signoff_role: ciso", "  signoff_role: chief")],
     [f"policy.yaml: categories.major.approvals[1]: unknown role 'cso' (known: {ROLES})",
      f"policy.yaml: emergency.signoff_role: unknown role 'chief' (known: {ROLES})"]),
    ("policy-missing-field", [("policy.yaml", "  signoff_role: ciso\n", "")],
     ["policy.yaml: emergency.signoff_role: required field is missing"]),
    ("policy-misspelt-field", [("policy.yaml", "  notice_hours: 24", "  notice_hour: 24")],
     ["policy.yaml: schedule.notice_hour: unknown field (check its spelling)"]),
    ("policy-unknown-category", [("policy.yaml", "  major:\n", "  majr:\n")],
     ["policy.yaml: categories.majr: invalid key: Input should be 'standard', 'normal', "
      "'major' or 'emergency'"]),
    ("policy-window-backwards", [("policy.yaml", '      start: "19:00"', '      start: "23:30"')],
     ["policy.yaml: schedule.maintenance_windows[1]: end 23:00:00 must be after start "
      "23:30:00"]),
    ("policy-unknown-time-zone",
     [("policy.yaml", "timezone: Europe/Berlin", "timezone: Europe/Berlni")],
     ["policy.yaml: schedule.timezone: unknown time zone 'Europe/Berlni' (use an IANA name "
      "such as 'Europe/Berlin' or 'UTC')"]),
    ("policy-retention-too-short",
     [("policy.yaml", "  retention_years: 3", "  retention_years: 1")],
     ["policy.yaml: change_log.retention_years: Input should be greater than or equal to 3"]),
    ("policy-yaml-syntax-error",
     [("policy.yaml", "  notice_hours: 24", "  notice_hours: [24")],
     [f"policy.yaml: not valid YAML: line {NOTICE + 1}, column 11: expected ',' or ']', but "
      f"got ':' (while parsing a flow sequence at line {NOTICE}, column 17)"]),
    ("policy-duplicate-key",
     [("policy.yaml", "  notice_hours: 24", "  notice_hours: 24\n  notice_hours: 0")],
     [f"policy.yaml: not valid YAML: line {NOTICE + 1}, column 3: duplicate key "
      f"'notice_hours' (first at line {NOTICE})"]),
    ("policy-missing-file", [("policy.yaml", "", None)],
     ["policy.yaml: file not found at {dir}/policy.yaml"]),
    ("policy-empty-file", [("policy.yaml", "", "")],
     ["policy.yaml: must be a mapping at the top level"]),
    ("policy-procedure-without-rollback-plan",
     [("policy.yaml", CERT_GATES, CERT_GATES.replace("rollback_plan, ", ""))],
     ["policy.yaml: standard_procedures.certificate_renewal.gates: must include "
      f"rollback_plan{STANDARD_MINIMUM}"]),
    ("policy-procedure-without-tests-and-approval",
     [("policy.yaml", CERT_GATES, CERT_GATES.replace("automated_tests, ", "")
       .replace(", approval", ""))],
     ["policy.yaml: standard_procedures.certificate_renewal.gates: must include "
      f"automated_tests, approval{STANDARD_MINIMUM}"]),
    ("policy-procedure-with-no-gates",
     [("policy.yaml", CONFIG_GATES, "    kinds: [config]\n    gates: []\n")],
     ["policy.yaml: standard_procedures.config_value_change.gates: must include "
      f"automated_tests, rollback_plan, approval{STANDARD_MINIMUM}"]),
    ("policy-procedure-misspelt-gate",
     [("policy.yaml", DEPENDENCY_GATES, DEPENDENCY_GATES.replace("rollback_plan", "rollback"))],
     [f"policy.yaml: standard_procedures.dependency_update.gates[2]: unknown gate 'rollback' "
      f"(known: {GATES})",
      "policy.yaml: standard_procedures.dependency_update.gates: must include "
      f"rollback_plan{STANDARD_MINIMUM}"]),
    ("policy-unknown-recorder-role",
     [("policy.yaml", "recorder_roles: [engineering_lead, on_call]",
       "recorder_roles: [engineering_lead, oncall]")],
     [f"policy.yaml: emergency.recorder_roles[1]: unknown role 'oncall' (known: {ROLES})"]),
    ("policy-unknown-process-roles",
     [("policy.yaml", "  sign_off_role: qa", "  sign_off_role: tester"),
      ("policy.yaml", "  reviewer_role: engineering_lead", "  reviewer_role: lead")],
     [f"policy.yaml: process.sign_off_role: unknown role 'tester' (known: {ROLES})",
      f"policy.yaml: process.reviewer_role: unknown role 'lead' (known: {ROLES})"]),
    ("policy-without-the-process",
     [("policy.yaml", "process:\n  sign_off_role: qa", "process:\n  sign_off: qa")],
     ["policy.yaml: process.sign_off_role: required field is missing",
      "policy.yaml: process.sign_off: unknown field (check its spelling)"]),
    ("policy-unknown-review-role",
     [("policy.yaml", "  review_role: engineering_lead", "  review_role: eng_lead")],
     [f"policy.yaml: emergency.review_role: unknown role 'eng_lead' (known: {ROLES})"]),
    ("policy-emergency-and-procedure-problems-in-order",
     [("policy.yaml", CERT_GATES, CERT_GATES.replace(", approval", "")),
      ("policy.yaml", "recorder_roles: [engineering_lead, on_call]",
       "recorder_roles: [lead, on_call, pager]"),
      ("policy.yaml", "  review_role: engineering_lead", "  review_role: reviewer"),
      ("policy.yaml", "  signoff_role: ciso", "  signoff_role: chief")],
     [f"policy.yaml: emergency.signoff_role: unknown role 'chief' (known: {ROLES})",
      f"policy.yaml: emergency.review_role: unknown role 'reviewer' (known: {ROLES})",
      f"policy.yaml: emergency.recorder_roles[0]: unknown role 'lead' (known: {ROLES})",
      f"policy.yaml: emergency.recorder_roles[2]: unknown role 'pager' (known: {ROLES})",
      "policy.yaml: standard_procedures.certificate_renewal.gates: must include "
      f"approval{STANDARD_MINIMUM}"]),
    # roster.yaml
    ("roster-unknown-role", [("roster.yaml", "roles: [qa]", "roles: [qa, tester]")],
     [f"roster.yaml: people[3].roles: unknown role 'tester' (known: {ROLES})"]),
    ("roster-duplicate-id", [("roster.yaml", "  - id: bob\n", "  - id: alice\n")],
     ["roster.yaml: people[1].id: duplicate id 'alice' (already used by people[0])"]),
    ("roster-invalid-id", [("roster.yaml", "id: oscar", "id: oscar the grouch")],
     ["roster.yaml: people[6].id: 'oscar the grouch' is not a valid person id (letters, "
      "digits, ._:@+-)"]),
    ("roster-missing-email", [("roster.yaml", "    email: quinn@example.com\n", "")],
     ["roster.yaml: people[3].email: required field is missing"]),
    ("roster-misspelt-field", [("roster.yaml", "shared_account: true", "shared: true")],
     ["roster.yaml: people[7].shared: unknown field (check its spelling)"]),
    ("roster-person-not-a-mapping", [("roster.yaml", "people:\n", "people:\n  - carol\n")],
     ["roster.yaml: people[0]: Input should be a valid dictionary or instance of Person"]),
    ("roster-several-problems",
     [("roster.yaml", "  - id: bob\n", "  - id: alice\n"),
      ("roster.yaml", "roles: [qa]", "roles: [qa, tester]"),
      ("roster.yaml", "id: oscar", "id: oscar the grouch")],
     ["roster.yaml: people[1].id: duplicate id 'alice' (already used by people[0])",
      f"roster.yaml: people[3].roles: unknown role 'tester' (known: {ROLES})",
      "roster.yaml: people[6].id: 'oscar the grouch' is not a valid person id (letters, "
      "digits, ._:@+-)"]),
    ("roster-no-people", [("roster.yaml", "", "people: []\n")],
     ["roster.yaml: people: must be a non-empty list of people"]),
    ("roster-yaml-syntax-error", [("roster.yaml", "    roles: [qa]", "    roles: [qa")],
     [f"roster.yaml: not valid YAML: line {QA_LINE + 1}, column 7: expected ',' or ']', "
      f"but got ':' (while parsing a flow sequence at line {QA_LINE}, column 12)"]),
    ("roster-missing-file", [("roster.yaml", "", None)],
     ["roster.yaml: file not found at {dir}/roster.yaml"]),
    # services.yaml
    ("services-unknown-placeholder",
     [("services.yaml", STAGING_DEPLOY_VERSION,
       STAGING_DEPLOY_VERSION.replace("{version}", "{versoin}"))],
     ["services.yaml: services.sample.environments.staging.deploy.argv: unknown placeholder "
      f"{{versoin}} in '{{versoin}}' (known: {PLACEHOLDERS})"]),
    ("services-unknown-environment", [("services.yaml", "      production:\n", "      prod:\n")],
     ["services.yaml: services.sample.environments.prod: invalid key: Input should be "
      "'staging' or 'production'"]),
    ("services-owner-not-in-roster", [("services.yaml", "owner: alice", "owner: zed")],
     ["services.yaml: services.sample.owner: 'zed' is not in roster.yaml"]),
    ("services-timeout-zero",
     [("services.yaml", STAGING_DEPLOY_VERSION + "\n          timeout_seconds: 30",
       STAGING_DEPLOY_VERSION + "\n          timeout_seconds: 0")],
     ["services.yaml: services.sample.environments.staging.deploy.timeout_seconds: Input "
      "should be greater than 0"]),
    ("services-missing-file", [("services.yaml", "", None)],
     ["services.yaml: file not found at {dir}/services.yaml"]),
    ("roster-roles-checked-when-policy-is-broken",
     [("policy.yaml", "  signoff_role: ciso\n", ""),
      ("roster.yaml", "roles: [qa]", "roles: [qa, tester]")],
     ["policy.yaml: emergency.signoff_role: required field is missing",
      f"roster.yaml: people[3].roles: unknown role 'tester' (known: {ROLES})"]),
    # all three at once
    ("three-files-at-once",
     [("policy.yaml", "      - role: engineering_lead\n      - role: ciso\n    gates",
       "      - role: engineering_lead\n      - role: cso\n    gates"),
      ("roster.yaml", "  - id: bob\n", "  - id: alice\n"),
      ("services.yaml", STAGING_DEPLOY_VERSION,
       STAGING_DEPLOY_VERSION.replace("{version}", "{versoin}"))],
     [f"policy.yaml: categories.major.approvals[1]: unknown role 'cso' (known: {ROLES})",
      "roster.yaml: people[1].id: duplicate id 'alice' (already used by people[0])",
      "services.yaml: services.sample.environments.staging.deploy.argv: unknown placeholder "
      f"{{versoin}} in '{{versoin}}' (known: {PLACEHOLDERS})"]),
    # jira.yaml, when the folder has one
    ("jira-unknown-approval-role",
     [("jira.yaml", "  names: {}", "  names: {engineering_lead: Lead approval, cso: CSO}")],
     [f"jira.yaml: approvals.names.cso: unknown role 'cso' (known: {ROLES})"]),
    ("jira-misspelt-field",
     [("jira.yaml", "  scope: Scope\n", "  scoop: Scope\n")],
     ["jira.yaml: fields.scoop: unknown field (check its spelling)"]),
    ("jira-bad-mode",
     [("jira.yaml", "  mode: prefect", "  mode: email")],
     ["jira.yaml: approvals.mode: Input should be 'prefect', 'jsm' or 'transition'"]),
    ("jira-negative-overlap",
     [("jira.yaml", "sync_overlap_seconds: 300", "sync_overlap_seconds: -5")],
     ["jira.yaml: sync_overlap_seconds: Input should be greater than or equal to 0"]),
]


@pytest.mark.parametrize(("edits", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_broken_config_is_reported_exactly(tmp_path, edits, expected):
    folder = broken_copy(tmp_path, edits)
    config, problems = check_config(folder)
    assert config is None
    assert [str(p) for p in problems] == [e.replace("{dir}", str(folder)) for e in expected]


def test_missing_production_environment(tmp_path):
    folder = broken_copy(tmp_path, [])
    path = folder / "services.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:text.index("      production:\n")], encoding="utf-8")
    config, problems = check_config(folder)
    assert config is None
    assert [str(p) for p in problems] == [
        "services.yaml: services.sample.environments: missing environment(s): production"]


def test_problem_names_file_and_path_first(tmp_path):
    folder = broken_copy(tmp_path, [
        ("policy.yaml", "      - role: engineering_lead\n      - role: ciso\n    gates",
         "      - role: engineering_lead\n      - role: cso\n    gates")])
    (problem,) = check_config(folder)[1]
    assert str(problem).startswith(
        "policy.yaml: categories.major.approvals[1]: unknown role 'cso'")
    assert (problem.file, problem.path) == ("policy.yaml", "categories.major.approvals[1]")


def test_load_config_raises_with_every_problem(tmp_path):
    folder = broken_copy(tmp_path, [
        ("roster.yaml", "  - id: bob\n", "  - id: alice\n"),
        ("services.yaml", "owner: alice", "owner: zed")])
    with pytest.raises(ConfigError) as info:
        load_config(folder)
    assert len(info.value.problems) == 1  # the roster failed, so owners are not checked
    assert str(info.value) == ("roster.yaml: people[1].id: duplicate id 'alice' (already "
                               "used by people[0])")


def test_real_config_is_clean(config):
    assert check_config(CONFIG_DIR)[1] == []
    assert config.policy.id == "SOC2-CHG-001"
    assert set(config.roster.people) >= {"alice", "erin", "quinn", "carol", "sam"}
    assert "sample" in config.services.services


@pytest.mark.parametrize("edits", [
    pytest.param([("policy.yaml", DEPENDENCY_GATES, DEPENDENCY_GATES.replace("security_scan, ",
                                                                             ""))],
                 id="procedure-drops-a-gate-beyond-the-minimum"),
    pytest.param([("policy.yaml", CERT_GATES, CERT_GATES.replace("[automated_tests",
                                                                 "[approval, automated_tests")
                   .replace(", approval]", ", code_review]"))],
                 id="procedure-gates-in-any-order-with-extras"),
    pytest.param([("policy.yaml", "recorder_roles: [engineering_lead, on_call]",
                   "recorder_roles: []")], id="no-recorder-roles"),
])
def test_policy_edits_that_stay_valid(tmp_path, edits):
    config, problems = check_config(broken_copy(tmp_path, edits))
    assert [str(p) for p in problems] == []
    assert config is not None


def test_without_jira_yaml_the_config_has_no_jira_mapping(tmp_path):
    folder = broken_copy(tmp_path, [("jira.yaml", "", None)])
    config, problems = check_config(folder)
    assert problems == [] and config is not None and config.jira is None
    assert load_config(CONFIG_DIR).jira is not None
