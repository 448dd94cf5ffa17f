"""Standard changes: the procedure a ticket names must cover it, or it is a normal change."""

from __future__ import annotations

from typing import Any

import pytest

from domain.models import Category
from domain.policy import Policy
from domain.standard import procedure_misfits, required_gates
from tests.unit.conftest import make_change

KNOWN = "certificate_renewal, config_value_change, dependency_update"
CERT_PATHS = "**/*.pem, **/certs/**"
DEP_PATHS = "requirements*.txt, poetry.lock, package-lock.json, pyproject.toml, go.sum"
CONFIG_PATHS = "config/**, **/*.env, **/settings*.yaml"


def standard(**overrides: Any):
    """A standard certificate renewal that fits its procedure, with `overrides`."""
    values: dict[str, Any] = {
        "category": Category.STANDARD,
        "standard_procedure": "certificate_renewal",
        "change_kind": "certificate",
        "changed_paths": ["deploy/certs/x.pem"],
    }
    values.update(overrides)
    return make_change(**values)


def only_for(policy: Policy, name: str, services: list[str]) -> Policy:
    """The policy with procedure `name` limited to `services`."""
    procedure = policy.standard_procedures[name].model_copy(update={"services": services})
    return policy.model_copy(update={
        "standard_procedures": {**policy.standard_procedures, name: procedure}})


@pytest.mark.parametrize(("overrides", "expected"), [
    pytest.param({}, [], id="cert-renewal-fits"),
    pytest.param({"changed_paths": ["deploy/certs/x.pem", "ca.pem", "certs/README"]}, [],
                 id="cert-renewal-several-paths-fit"),
    pytest.param({"changed_paths": ["./deploy/certs/x.pem"]}, [], id="leading-dot-slash-fits"),
    pytest.param({"standard_procedure": "dependency_update", "change_kind": "dependency",
                  "changed_paths": ["requirements.txt", "requirements-dev.txt", "poetry.lock"]},
                 [], id="dependency-update-fits"),
    pytest.param({"standard_procedure": "config_value_change", "change_kind": "config",
                  "changed_paths": ["config/app/limits.yaml", "deploy/prod.env",
                                    "svc/settings-prod.yaml"]},
                 [], id="config-value-change-fits"),
    pytest.param({"standard_procedure": None},
                 [f"no standard_procedure named (known: {KNOWN})"], id="no-procedure-named"),
    pytest.param({"standard_procedure": ""},
                 [f"no standard_procedure named (known: {KNOWN})"], id="empty-procedure-name"),
    pytest.param({"standard_procedure": "cert_renewal"},
                 [f"standard_procedure 'cert_renewal' is not in the policy (known: {KNOWN})"],
                 id="unknown-procedure"),
    pytest.param({"change_kind": "dependency"},
                 ["change_kind 'dependency' is not one certificate_renewal covers "
                  "(covered: certificate)"], id="wrong-change-kind"),
    pytest.param({"change_kind": None},
                 ["change_kind None is not one certificate_renewal covers "
                  "(covered: certificate)"], id="no-change-kind"),
    pytest.param({"changed_paths": ["deploy/certs/x.pem", "src/app.py"]},
                 [f"path 'src/app.py' is outside certificate_renewal (allowed: {CERT_PATHS})"],
                 id="path-outside"),
    pytest.param({"changed_paths": []},
                 [f"no changed_paths listed; certificate_renewal covers only {CERT_PATHS}"],
                 id="no-changed-paths"),
    pytest.param({"standard_procedure": "dependency_update", "change_kind": "dependency",
                  "changed_paths": ["requirements-dev.txt"]}, [],
                 id="top-level-requirements-glob-matches"),
    pytest.param({"standard_procedure": "dependency_update", "change_kind": "dependency",
                  "changed_paths": ["src/requirements.txt"]},
                 [f"path 'src/requirements.txt' is outside dependency_update "
                  f"(allowed: {DEP_PATHS})"],
                 id="top-level-glob-does-not-match-below-root"),
    pytest.param({"standard_procedure": "dependency_update", "change_kind": "dependency",
                  "changed_paths": ["Requirements.txt"]},
                 [f"path 'Requirements.txt' is outside dependency_update (allowed: {DEP_PATHS})"],
                 id="paths-match-case-sensitively"),
    pytest.param({"standard_procedure": "config_value_change", "change_kind": "config",
                  "changed_paths": ["src/config/limits.yaml"]},
                 [f"path 'src/config/limits.yaml' is outside config_value_change "
                  f"(allowed: {CONFIG_PATHS})"],
                 id="config-glob-anchored-at-root"),
    pytest.param({"change_kind": "config", "changed_paths": ["src/app.py", "deploy/certs/x.pem",
                                                             "docs/tls.md"]},
                 ["change_kind 'config' is not one certificate_renewal covers "
                  "(covered: certificate)",
                  f"path 'src/app.py' is outside certificate_renewal (allowed: {CERT_PATHS})",
                  f"path 'docs/tls.md' is outside certificate_renewal (allowed: {CERT_PATHS})"],
                 id="several-reasons-kind-then-paths-in-order"),
])
def test_procedure_misfits(policy, overrides, expected):
    assert procedure_misfits(standard(**overrides), policy) == expected


@pytest.mark.parametrize(("service", "overrides", "expected"), [
    pytest.param("billing-api", {}, [], id="service-covered-by-glob"),
    pytest.param("sample", {},
                 ["service 'sample' is not covered by certificate_renewal (covered: billing-*)"],
                 id="service-not-covered"),
    pytest.param("billing", {},
                 ["service 'billing' is not covered by certificate_renewal (covered: billing-*)"],
                 id="glob-needs-the-dash"),
    pytest.param("sample", {"change_kind": "config", "changed_paths": ["src/app.py"]},
                 ["service 'sample' is not covered by certificate_renewal (covered: billing-*)",
                  "change_kind 'config' is not one certificate_renewal covers "
                  "(covered: certificate)",
                  f"path 'src/app.py' is outside certificate_renewal (allowed: {CERT_PATHS})"],
                 id="service-kind-path-in-order"),
    pytest.param("sample", {"change_kind": "config", "changed_paths": []},
                 ["service 'sample' is not covered by certificate_renewal (covered: billing-*)",
                  "change_kind 'config' is not one certificate_renewal covers "
                  "(covered: certificate)",
                  f"no changed_paths listed; certificate_renewal covers only {CERT_PATHS}"],
                 id="service-kind-no-paths-in-order"),
])
def test_procedure_misfits_checks_the_service(policy, service, overrides, expected):
    billing_only = only_for(policy, "certificate_renewal", ["billing-*"])
    assert procedure_misfits(standard(service=service, **overrides), billing_only) == expected


def test_the_real_procedures_cover_every_service(policy):
    assert all(p.services == ["*"] for p in policy.standard_procedures.values())
    assert procedure_misfits(standard(service="anything-at-all"), policy) == []


CATEGORY_STANDARD = ["automated_tests", "rollback_plan", "approval"]
ALL_SIX = ["code_review", "automated_tests", "security_scan", "staging_validation",
           "rollback_plan", "approval"]


@pytest.mark.parametrize(("overrides", "expected"), [
    pytest.param({"standard_procedure": "dependency_update"},
                 ["automated_tests", "security_scan", "rollback_plan", "approval"],
                 id="dependency-update-adds-security-scan"),
    pytest.param({"standard_procedure": "certificate_renewal"}, CATEGORY_STANDARD,
                 id="certificate-renewal"),
    pytest.param({"standard_procedure": "unknown_one"}, CATEGORY_STANDARD,
                 id="unknown-procedure-gets-category-gates"),
    pytest.param({"standard_procedure": None}, CATEGORY_STANDARD,
                 id="no-procedure-gets-category-gates"),
    pytest.param({"category": Category.NORMAL, "standard_procedure": None}, ALL_SIX,
                 id="normal"),
    pytest.param({"category": Category.NORMAL, "standard_procedure": "dependency_update"},
                 ALL_SIX, id="normal-ignores-a-named-procedure"),
    pytest.param({"category": Category.MAJOR, "standard_procedure": "certificate_renewal"},
                 ALL_SIX, id="major-ignores-a-named-procedure"),
])
def test_required_gates(policy, overrides, expected):
    assert required_gates(standard(**overrides), policy) == expected


def test_required_gates_follow_the_procedure_in_the_policy(policy):
    procedure = policy.standard_procedures["certificate_renewal"].model_copy(
        update={"gates": ["approval", "rollback_plan", "automated_tests", "code_review"]})
    changed = policy.model_copy(update={"standard_procedures": {
        **policy.standard_procedures, "certificate_renewal": procedure}})
    gates = required_gates(standard(), changed)
    assert gates == ["approval", "rollback_plan", "automated_tests", "code_review"]
    gates.append("mutated")  # a copy: the caller cannot change the policy
    assert required_gates(standard(), changed)[-1] == "code_review"


def test_a_path_climbing_out_of_its_folder_does_not_fit(policy) -> None:
    change = make_change(category=Category.STANDARD, standard_procedure="config_value_change",
                         change_kind="config", changed_paths=["config/../src/app.py"])
    assert procedure_misfits(change, policy) == [
        "path 'config/../src/app.py' climbs out of its folder ('..'); list the path it "
        "resolves to"]
