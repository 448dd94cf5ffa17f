"""The decision forms' schemas, as the Prefect UI renders them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tasks.approvals import form_for
from tasks.verbal import verbal_form_for


@pytest.mark.parametrize("eligible", [["erin"], ["erin", "bob"]])
def test_the_approver_is_a_dropdown_of_the_eligible_even_when_only_one_is(
        eligible: list[str]) -> None:
    # A one-value `const` is shown by the UI as a locked, empty box and refused as missing.
    schema = form_for(eligible).model_json_schema()["properties"]["approver"]
    assert schema["enum"] == eligible and "const" not in schema
    form = form_for(eligible)
    assert form(decision="approve", approver=eligible[-1], code="C0DE").approver == eligible[-1]
    with pytest.raises(ValidationError, match="approver"):
        form(decision="approve", approver="mallory", code="C0DE")


def test_the_verbal_form_lists_who_may_be_named_and_who_may_record() -> None:
    props = verbal_form_for(["carol"], ["alice"]).model_json_schema()["properties"]
    assert props["approver"]["enum"] == ["carol"] and props["recorder"]["enum"] == ["alice"]
