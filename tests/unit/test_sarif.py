"""Reading a SARIF 2.1.0 log as a code scan: alerts, severities, and malformed logs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from domain.code_host import CodeScan, ScanAlert
from domain.sarif import scan_from_sarif

_DELETE = object()


def codeql_rule(rule_id: str, security_severity: str | None = None,
                level: str = "warning") -> dict[str, Any]:
    """A rule as CodeQL describes it in its query pack."""
    properties: dict[str, Any] = {"tags": ["security"], "precision": "high"}
    if security_severity is not None:
        properties["security-severity"] = security_severity
    return {"id": rule_id, "name": rule_id, "shortDescription": {"text": rule_id},
            "defaultConfiguration": {"enabled": True, "level": level},
            "properties": properties}


def codeql_result(rule_id: str, index: int, uri: str, **extra: Any) -> dict[str, Any]:
    """A result as CodeQL writes it: its rule by id and by index in extension 0."""
    return {"ruleId": rule_id, "rule": {"id": rule_id, "index": index,
                                        "toolComponent": {"index": 0}},
            "message": {"text": "Something is wrong here."},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%", "index": 0},
                "region": {"startLine": 12, "startColumn": 5, "endColumn": 20}}}],
            "partialFingerprints": {"primaryLocationLineHash": "39fa2ee980eb94b0:1"},
            **extra}


def codeql_log() -> dict[str, Any]:
    """A CodeQL-like log: rules in the query pack, one suppressed and one absent result."""
    rules = [codeql_rule("py/sql-injection", "8.8", "error"),
             codeql_rule("py/command-line-injection", "9.8", "error"),
             codeql_rule("py/stack-trace-exposure", "5.4", "error"),
             codeql_rule("py/unused-import", level="note")]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "CodeQL", "semanticVersion": "2.20.0",
                                "notifications": [], "rules": []},
                     "extensions": [{"name": "codeql/python-queries",
                                     "semanticVersion": "1.3.0", "rules": rules}]},
            "artifacts": [{"location": {"uri": "src/db.py", "uriBaseId": "%SRCROOT%"}}],
            "results": [
                codeql_result("py/sql-injection", 0, "src/db.py", baselineState="new"),
                codeql_result("py/command-line-injection", 1, "src/run.py",
                              hostedViewerUri="https://viewer.example/alerts/2"),
                codeql_result("py/stack-trace-exposure", 2, "src/web.py",
                              baselineState="unchanged"),
                codeql_result("py/unused-import", 3, "src/app.py"),
                codeql_result("py/sql-injection", 0, "src/legacy.py",
                              suppressions=[{"kind": "inSource"}]),
                codeql_result("py/sql-injection", 0, "src/gone.py", baselineState="absent"),
            ],
            "columnKind": "unicodeCodePoints",
        }]}


def alert(number: int, rule_id: str, severity: str, path: str | None, tool: str = "CodeQL",
          url: str = "") -> ScanAlert:
    return ScanAlert(number=number, rule_id=rule_id, severity=severity, state="open",
                     tool=tool, path=path, url=url)


def log_with(result: dict[str, Any], rule: dict[str, Any] | None = None) -> dict[str, Any]:
    """A one-result log whose driver defines `rule` (if any)."""
    driver: dict[str, Any] = {"name": "Scanner"}
    if rule is not None:
        driver["rules"] = [rule]
    return {"version": "2.1.0", "runs": [{"tool": {"driver": driver}, "results": [result]}]}


def severity_of(result: dict[str, Any], rule: dict[str, Any] | None = None) -> str:
    [found] = scan_from_sarif(log_with({"ruleId": "R1", **result}, rule)).alerts
    return found.severity


# --- a CodeQL log ------------------------------------------------------------------------


def test_a_codeql_log_read_as_a_code_scan() -> None:
    document = json.loads(json.dumps(codeql_log()))  # as read from a file

    scan = scan_from_sarif(document)

    assert scan == CodeScan(analysed=True, alerts=[
        alert(1, "py/sql-injection", "high", "src/db.py"),
        alert(2, "py/command-line-injection", "critical", "src/run.py",
              url="https://viewer.example/alerts/2"),
        alert(3, "py/stack-trace-exposure", "medium", "src/web.py"),
        alert(4, "py/unused-import", "note", "src/app.py")])  # the suppressed and absent: not


def test_several_runs_number_results_across_runs() -> None:
    document = codeql_log()
    document["runs"].append({
        "tool": {"driver": {"name": "Semgrep OSS", "rules": [
            {"id": "python.lang.security.audit.eval", "properties": {
                "security-severity": "7.0"}},
            {"id": "python.flask.debug", "defaultConfiguration": {"level": "error"}}]}},
        "results": [
            {"ruleId": "python.flask.debug", "message": {"text": "debug"}},
            {"ruleIndex": 0, "message": {"text": "eval"}, "locations": [
                {"physicalLocation": {"artifactLocation": {"uri": "tools/x.py"}}}]}]})

    alerts = scan_from_sarif(document).alerts

    assert alerts[4:] == [
        alert(7, "python.flask.debug", "error", None, tool="Semgrep OSS"),
        alert(8, "python.lang.security.audit.eval", "high", "tools/x.py", tool="Semgrep OSS")]
    assert [a.number for a in alerts] == [1, 2, 3, 4, 7, 8]  # 5 and 6 were skipped


# --- severity ------------------------------------------------------------------------------


@pytest.mark.parametrize(("score", "expected"), [
    ("10.0", "critical"), ("9.1", "critical"), ("9.0", "high"), ("8.9", "high"),
    ("7.0", "high"), ("6.9", "medium"), ("4.0", "medium"), ("3.9", "low"), ("0.1", "low"),
    ("0", "none"), ("0.0", "none"), (" 7.5 ", "high"), (8, "high")])
def test_security_severity_in_githubs_bands(score: object, expected: str) -> None:
    rule = {"id": "R1", "properties": {"security-severity": score},
            "defaultConfiguration": {"level": "note"}}
    assert severity_of({"level": "note"}, rule) == expected  # the score wins over levels


@pytest.mark.parametrize(("result", "rule", "expected"), [
    ({}, None, "warning"),                                          # SARIF's default
    ({}, {"id": "R1"}, "warning"),
    ({}, {"id": "R1", "defaultConfiguration": {"level": "error"}}, "error"),
    ({}, {"id": "R1", "defaultConfiguration": {}}, "warning"),
    ({"level": "note"}, {"id": "R1", "defaultConfiguration": {"level": "error"}}, "note"),
    ({"level": "none"}, None, "none"),
    ({"level": "error"}, {"id": "R1", "properties": {"tags": ["quality"]}}, "error"),
    ({"kind": "review"}, {"id": "R1", "defaultConfiguration": {"level": "error"}}, "none"),
    ({"kind": "fail"}, {"id": "R1", "defaultConfiguration": {"level": "error"}}, "error"),
    ({"kind": "open", "level": "warning"}, None, "warning"),
])
def test_without_a_security_severity_the_level_falls_back(
        result: dict[str, Any], rule: dict[str, Any] | None, expected: str) -> None:
    assert severity_of(result, rule) == expected


# --- which results are alerts --------------------------------------------------------------


@pytest.mark.parametrize(("extra", "kept"), [
    ({}, True),
    ({"suppressions": []}, True),
    ({"suppressions": [{"kind": "inSource"}]}, False),
    ({"suppressions": [{"kind": "external", "status": "accepted"}]}, False),
    ({"suppressions": [{"kind": "external", "status": "underReview"}]}, True),
    ({"suppressions": [{"kind": "external", "status": "rejected"}]}, True),
    ({"suppressions": [{"kind": "inSource"}, {"kind": "external", "status": "rejected"}]},
     True),
    ({"baselineState": "new"}, True),
    ({"baselineState": "unchanged"}, True),
    ({"baselineState": "updated"}, True),
    ({"baselineState": "absent"}, False),
    ({"kind": "pass"}, False),
    ({"kind": "notApplicable"}, False),
    ({"kind": "informational"}, True),
])
def test_suppressed_absent_and_passing_results_are_no_alerts(extra: dict[str, Any],
                                                             kept: bool) -> None:
    scan = scan_from_sarif(log_with({"ruleId": "R1", **extra}))
    assert len(scan.alerts) == (1 if kept else 0) and scan.analysed


def test_a_log_with_no_results_list_was_not_analysed() -> None:
    no_runs = {"version": "2.1.0", "runs": []}
    failed = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Scanner"}}}]}
    clean = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Scanner"}},
                                            "results": []}]}

    assert scan_from_sarif(no_runs) == CodeScan(analysed=False, alerts=[])
    assert scan_from_sarif(failed) == CodeScan(analysed=False, alerts=[])
    assert scan_from_sarif(clean) == CodeScan(analysed=True, alerts=[])


# --- finding the rule and the file -------------------------------------------------------


def test_rules_are_found_by_index_id_or_component_name() -> None:
    extension = {"name": "pack", "guid": "0ab4", "rules": [
        {"id": "P1", "properties": {"security-severity": "9.5"}}]}
    document = {"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "Scanner", "rules": [{"id": "D1"}]},
                 "extensions": [extension]},
        "results": [
            {"ruleIndex": 0},                                                  # driver
            {"rule": {"index": 0, "toolComponent": {"index": 0}}},             # extension
            {"ruleId": "P1"},                                                  # id, anywhere
            {"rule": {"id": "P1", "toolComponent": {"name": "pack"}}},         # id in "pack"
            {"rule": {"id": "P1", "toolComponent": {"guid": "0ab4"}}},         # id in "0ab4"
            {"ruleId": "P1", "rule": {"toolComponent": {"name": "Scanner"}}},  # not in driver
            {"ruleId": "X9", "ruleIndex": -1},                                 # no such rule
        ]}]}

    alerts = scan_from_sarif(document).alerts

    assert [(a.rule_id, a.severity) for a in alerts] == [
        ("D1", "warning"), ("P1", "critical"), ("P1", "critical"), ("P1", "critical"),
        ("P1", "critical"), ("P1", "warning"), ("X9", "warning")]


@pytest.mark.parametrize(("locations", "path"), [
    (None, None),
    ([], None),
    ([{"message": {"text": "logical only"}}], None),
    ([{"physicalLocation": {"region": {"startLine": 1}}}], None),
    ([{"physicalLocation": {"artifactLocation": {"index": 0}}}], None),
    ([{"physicalLocation": {"artifactLocation": {"uri": "a/b.py"}}},
      {"physicalLocation": {"artifactLocation": {"uri": "c.py"}}}], "a/b.py"),
])
def test_the_path_is_the_first_locations_file(locations: list[Any] | None,
                                             path: str | None) -> None:
    result: dict[str, Any] = {"ruleId": "R1"}
    if locations is not None:
        result["locations"] = locations
    [found] = scan_from_sarif(log_with(result)).alerts
    assert found.path == path and found.url == ""


# --- malformed logs ------------------------------------------------------------------------


def base_log() -> dict[str, Any]:
    """A small valid log with four results, to break in one place at a time."""
    result = {"ruleId": "R1", "ruleIndex": 0, "level": "error", "message": {"text": "x"},
              "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.py"}}}]}
    return {"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "Scanner", "rules": [{"id": "R1"}]}},
        "results": [copy.deepcopy(result) for _ in range(4)]}]}


def broken(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    """`base_log()` with the value at `path` replaced (or deleted, for `_DELETE`)."""
    document = base_log()
    parent: Any = document
    for step in path[:-1]:
        parent = parent[step]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return document


R3 = ("runs", 0, "results", 3)
RULE = ("runs", 0, "tool", "driver", "rules", 0)


@pytest.mark.parametrize(("path", "value", "message"), [
    (("version",), _DELETE, 'version: expected "2.1.0", but it is missing'),
    (("version",), "2.0.0", "version: expected \"2.1.0\", got the string '2.0.0'"),
    (("runs",), _DELETE, "runs: expected a list, but it is missing"),
    (("runs",), {"0": {}}, "runs: expected a list, got an object"),
    (("runs", 0), "run", "runs[0]: expected an object, got the string 'run'"),
    (("runs", 0, "tool"), _DELETE, "runs[0].tool: expected an object, but it is missing"),
    (("runs", 0, "tool", "driver"), None, "runs[0].tool.driver: expected an object, got null"),
    (("runs", 0, "tool", "driver", "name"), 3,
     "runs[0].tool.driver.name: expected a string, got the number 3"),
    (("runs", 0, "tool", "extensions"), {}, "runs[0].tool.extensions: expected a list, "
                                            "got an object"),
    (("runs", 0, "tool", "driver", "rules"), {"R1": {}},
     "runs[0].tool.driver.rules: expected a list, got an object"),
    (("runs", 0, "results"), {}, "runs[0].results: expected a list, got an object"),
    (("runs", 0, "results", 2), None, "runs[0].results[2]: expected an object, got null"),
    ((*R3, "locations"), {"uri": "a.py"},
     "runs[0].results[3].locations: expected a list, got an object"),
    ((*R3, "locations", 0, "physicalLocation"), [],
     "runs[0].results[3].locations[0].physicalLocation: expected an object, got a list"),
    ((*R3, "locations", 0, "physicalLocation", "artifactLocation", "uri"), 1,
     "runs[0].results[3].locations[0].physicalLocation.artifactLocation.uri: "
     "expected a string, got the number 1"),
    ((*R3, "level"), "fatal",
     "runs[0].results[3].level: expected one of error, warning, note, none, got 'fatal'"),
    ((*R3, "kind"), "failed", "runs[0].results[3].kind: expected one of fail, pass, open, "
                              "review, informational, notApplicable, got 'failed'"),
    ((*R3, "baselineState"), "gone", "runs[0].results[3].baselineState: expected one of "
                                     "new, unchanged, updated, absent, got 'gone'"),
    ((*R3, "suppressions"), {"kind": "inSource"},
     "runs[0].results[3].suppressions: expected a list, got an object"),
    ((*R3, "suppressions"), ["inSource"],
     "runs[0].results[3].suppressions[0]: expected an object, got the string 'inSource'"),
    ((*R3, "suppressions"), [{"kind": "external", "status": "maybe"}],
     "runs[0].results[3].suppressions[0].status: expected one of accepted, underReview, "
     "rejected, got 'maybe'"),
    ((*R3, "ruleId"), ["R1"], "runs[0].results[3].ruleId: expected a string, got a list"),
    ((*R3, "ruleIndex"), 5, "runs[0].results[3].ruleIndex: 5 is out of range: "
                            "runs[0].tool.driver.rules has 1"),
    ((*R3, "ruleIndex"), "0", "runs[0].results[3].ruleIndex: expected an integer, "
                              "got the string '0'"),
    ((*R3, "ruleIndex"), True, "runs[0].results[3].ruleIndex: expected an integer, "
                               "got a boolean"),
    ((*R3, "ruleIndex"), -2, "runs[0].results[3].ruleIndex: expected an index (0 or more, "
                             "or -1), got -2"),
    ((*R3, "rule"), "R1", "runs[0].results[3].rule: expected an object, got the string 'R1'"),
    ((*R3, "rule"), {"index": 0, "toolComponent": {"index": 2}},
     "runs[0].results[3].rule.toolComponent.index: 2 is out of range: "
     "runs[0].tool.extensions has 0"),
    ((*R3, "rule"), {"toolComponent": {"name": "other"}},
     "runs[0].results[3].rule.toolComponent: names no tool component of the run"),
    ((*R3, "rule"), {"toolComponent": []},
     "runs[0].results[3].rule.toolComponent: expected an object, got a list"),
    ((*R3, "hostedViewerUri"), 7,
     "runs[0].results[3].hostedViewerUri: expected a string, got the number 7"),
    ((*RULE, "properties"), ["security"],
     "runs[0].tool.driver.rules[0].properties: expected an object, got a list"),
    ((*RULE, "properties"), {"security-severity": "high"},
     "runs[0].tool.driver.rules[0].properties.security-severity: expected a numeric string "
     "from 0 to 10, got the string 'high'"),
    ((*RULE, "properties"), {"security-severity": "11"},
     "runs[0].tool.driver.rules[0].properties.security-severity: expected a numeric string "
     "from 0 to 10, got the string '11'"),
    ((*RULE, "properties"), {"security-severity": "NaN"},
     "runs[0].tool.driver.rules[0].properties.security-severity: expected a numeric string "
     "from 0 to 10, got the string 'NaN'"),
    ((*RULE, "defaultConfiguration"), {"level": "high"},
     "runs[0].tool.driver.rules[0].defaultConfiguration.level: expected one of error, "
     "warning, note, none, got 'high'"),
])
def test_a_malformed_log_names_the_path(path: tuple[str | int, ...], value: object,
                                        message: str) -> None:
    with pytest.raises(ValueError) as malformed:
        scan_from_sarif(broken(path, value))
    assert str(malformed.value) == message


def test_a_result_naming_no_rule_and_a_rule_without_an_id_are_malformed() -> None:
    document = base_log()
    del document["runs"][0]["results"][3]["ruleId"]
    del document["runs"][0]["results"][3]["ruleIndex"]
    with pytest.raises(ValueError, match=r"^runs\[0\]\.results\[3\]: names no rule"):
        scan_from_sarif(document)

    document = base_log()
    del document["runs"][0]["results"][0]["ruleIndex"]
    del document["runs"][0]["tool"]["driver"]["rules"][0]["id"]
    with pytest.raises(ValueError) as no_id:
        scan_from_sarif(document)
    assert str(no_id.value) == ("runs[0].tool.driver.rules[0].id: expected a string, "
                                "but it is missing")


@pytest.mark.parametrize(("document", "message"), [
    ([], "the document: expected an object, got a list"),
    (None, "the document: expected an object, got null"),
    ("{}", "the document: expected an object, got the string '{}'"),
])
def test_a_document_that_is_no_object_is_malformed(document: object, message: str) -> None:
    with pytest.raises(ValueError) as malformed:
        scan_from_sarif(document)
    assert str(malformed.value) == message


def test_the_valid_base_log_reads() -> None:
    scan = scan_from_sarif(base_log())
    assert [(a.number, a.rule_id, a.severity, a.path) for a in scan.alerts] == [
        (n, "R1", "error", "a.py") for n in range(1, 5)]
