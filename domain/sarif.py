"""Code scanning from a SARIF file: the verdict of a scanner the code host does not run.

A scanner run in CI or by a vendor leaves a SARIF 2.1.0 log instead of code-scanning
alerts on the code host. `scan_from_sarif` reads that log (already parsed from JSON) as
the same `CodeScan` the code host gives, so the gates judge both alike.

It reads the log as GitHub's code scanning does where GitHub documents how, and as the
SARIF 2.1.0 standard says elsewhere:

* one open alert per result that is still there (its `baselineState` is not "absent")
  and not suppressed (a non-empty `suppressions` list, each accepted or of no status),
  unless its `kind` says it found nothing ("pass", "notApplicable"); a skipped result
  keeps its number, so numbers are positions in the file (1-based, across runs);
* a result's rule is found by `rule.index`/`ruleIndex` in the rules of its tool
  component (the driver, or the extension `rule.toolComponent` names), else by its id
  among the driver's and then the extensions' rules;
* the severity is the rule's `security-severity` score in GitHub's bands (over 9.0
  critical, 7.0 and over high, 4.0 and over medium, over 0 low, 0 none); without one,
  the result's `level`, else "none" for a result whose `kind` is not "fail", else the
  rule's `defaultConfiguration.level`, else SARIF's default "warning";
* the log was analysed when at least one run has a `results` list (SARIF leaves it out
  when the tool failed to run): no results list is no scan, not a clean one.

Only what these need is checked: anything else in the log may be as it likes. A log that
is wrong where it matters raises `ValueError` naming the JSON path and what is wrong
there, e.g. `runs[0].results[3].locations: expected a list, got an object`.
"""

from __future__ import annotations

import math

from domain.code_host import CodeScan, ScanAlert

SARIF_VERSION = "2.1.0"
"""The one SARIF version read."""

LEVELS = ("error", "warning", "note", "none")
"""SARIF's result levels."""

DEFAULT_LEVEL = "warning"
"""SARIF's level for a failing result that neither it nor its rule gives one."""

KINDS = ("fail", "pass", "open", "review", "informational", "notApplicable")
"""SARIF's result kinds; only "fail" (the default) takes its rule's level."""

NOT_FINDINGS = ("pass", "notApplicable")
"""Kinds that say the rule found nothing there: a rule that passed, or did not apply."""

BASELINE_STATES = ("new", "unchanged", "updated", "absent")
"""SARIF's baseline states; an "absent" result was in the baseline only."""

SUPPRESSION_STATUSES = ("accepted", "underReview", "rejected")
"""SARIF's suppression statuses; a suppression with no status counts as accepted."""


def scan_from_sarif(document: object) -> CodeScan:
    """The code scan a parsed SARIF 2.1.0 log reports, its alerts in file order.

    Args:
        document: the log as `json.loads` gives it.

    Raises:
        ValueError: the log is malformed; the message names the JSON path.
    """
    root = _Node(document, "")
    version = root.object().field("version")
    if version.value != SARIF_VERSION:
        raise version.wrong(f'"{SARIF_VERSION}"')
    alerts: list[ScanAlert] = []
    analysed, number = False, 0
    for run in root.field("runs").items():
        tool = _Tool(run.object())
        results = run.field("results")
        analysed = analysed or results.present
        for result in results.opt_items():
            number += 1
            if _kept(result.object()):
                alerts.append(_alert(result, number, tool))
    return CodeScan(analysed=analysed, alerts=alerts)


class _Node:
    """A value of the log with its JSON path; each read checks the type and names the path.

    Stepping into a field of an absent value gives an absent value, so optional chains
    read plainly; a required read of an absent value says it is missing.
    """

    def __init__(self, value: object, path: str, missing: bool = False) -> None:
        self.value = value
        self.path = path
        self.missing = missing

    @property
    def present(self) -> bool:
        """Whether the value is there (JSON null counts as not there)."""
        return self.value is not None

    def error(self, problem: str) -> ValueError:
        """The error for this value, prefixed with its path."""
        return ValueError(f"{self.path or 'the document'}: {problem}")

    def wrong(self, expected: str) -> ValueError:
        """The error for this value not being what was `expected` (or not being there)."""
        if self.missing:
            return self.error(f"expected {expected}, but it is missing")
        return self.error(f"expected {expected}, got {_json_kind(self.value)}")

    def field(self, name: str) -> _Node:
        """The member `name` of this object (absent if this is absent)."""
        path = f"{self.path}.{name}" if self.path else name
        if not self.present:
            return _Node(None, path, missing=True)
        if not isinstance(self.value, dict):
            raise self.wrong("an object")
        return _Node(self.value.get(name), path, missing=name not in self.value)

    def object(self) -> _Node:
        """This value, which must be an object."""
        if not isinstance(self.value, dict):
            raise self.wrong("an object")
        return self

    def opt_object(self) -> _Node:
        """This value, which must be an object if it is there."""
        return self.object() if self.present else self

    def items(self) -> list[_Node]:
        """The items of this value, which must be a list."""
        if not isinstance(self.value, list):
            raise self.wrong("a list")
        return [_Node(item, f"{self.path}[{i}]") for i, item in enumerate(self.value)]

    def opt_items(self) -> list[_Node]:
        """The items of this value, which must be a list if it is there; else none."""
        return self.items() if self.present else []

    def text(self) -> str:
        """This value, which must be a string."""
        if not isinstance(self.value, str):
            raise self.wrong("a string")
        return self.value

    def opt_text(self) -> str | None:
        """This value, which must be a string if it is there."""
        return self.text() if self.present else None

    def choice(self, allowed: tuple[str, ...]) -> str | None:
        """This value, which must be one of `allowed` if it is there."""
        value = self.opt_text()
        if value is not None and value not in allowed:
            raise self.error(f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    def opt_index(self) -> int | None:
        """This array index, if it is there; SARIF's -1 ("no index") is None."""
        if not self.present:
            return None
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise self.wrong("an integer")
        if self.value < -1:
            raise self.error(f"expected an index (0 or more, or -1), got {self.value}")
        return None if self.value == -1 else self.value


class _Tool:
    """A run's tool: its name, and the rules of its driver and of its extensions."""

    def __init__(self, run: _Node) -> None:
        tool = run.field("tool").object()
        self.driver = tool.field("driver").object()
        self.name = self.driver.field("name").text()
        extensions = tool.field("extensions")
        self.extensions = [extension.object() for extension in extensions.opt_items()]
        self.extensions_path = extensions.path

    def component(self, reference: _Node) -> _Node:
        """The tool component a `toolComponent` reference names; the driver if absent."""
        if not reference.opt_object().present:
            return self.driver
        index_at = reference.field("index")
        index = index_at.opt_index()
        if index is not None:
            return _at(self.extensions, index, index_at, self.extensions_path)
        name, guid = reference.field("name").opt_text(), reference.field("guid").opt_text()
        for component in (self.driver, *self.extensions):
            if (name is not None and component.field("name").opt_text() == name) or (
                    guid is not None and component.field("guid").opt_text() == guid):
                return component
        raise reference.error("names no tool component of the run")

    @staticmethod
    def rules(component: _Node) -> list[_Node]:
        """The rules a tool component defines, each an object."""
        return [rule.object() for rule in component.field("rules").opt_items()]

    def rule_by_id(self, rule_id: str, component: _Node | None) -> _Node | None:
        """The rule with this id: in `component` only if given, else anywhere in the tool."""
        searched = [component] if component is not None else [self.driver, *self.extensions]
        for owner in searched:
            for rule in self.rules(owner):
                if rule.field("id").text() == rule_id:
                    return rule
        return None


def _at(items: list[_Node], index: int, where: _Node, owner: str) -> _Node:
    """`items[index]`, or an error at `where` saying the index is out of range."""
    if index >= len(items):
        raise where.error(f"{index} is out of range: {owner} has {len(items)}")
    return items[index]


def _json_kind(value: object) -> str:
    """What a JSON value is, for a message: "an object", "a list", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else type(value).__name__


def _kept(result: _Node) -> bool:
    """Whether a result is an alert: a finding, still there and not suppressed."""
    if result.field("kind").choice(KINDS) in NOT_FINDINGS:
        return False
    if result.field("baselineState").choice(BASELINE_STATES) == "absent":
        return False
    statuses = [suppression.object().field("status").choice(SUPPRESSION_STATUSES)
                for suppression in result.field("suppressions").opt_items()]
    return not statuses or any(status not in (None, "accepted") for status in statuses)


def _alert(result: _Node, number: int, tool: _Tool) -> ScanAlert:
    """The open alert for one kept result."""
    rule_id, rule = _rule(result, tool)
    return ScanAlert(number=number, rule_id=rule_id, severity=_severity(result, rule),
                     state="open", tool=tool.name, path=_location(result),
                     url=result.field("hostedViewerUri").opt_text() or "")


def _rule(result: _Node, tool: _Tool) -> tuple[str, _Node | None]:
    """The result's rule id, and its rule when the tool defines it.

    Raises:
        ValueError: the result names no rule, or an index that is out of range.
    """
    reference = result.field("rule").opt_object()
    rule_id = result.field("ruleId").opt_text() or reference.field("id").opt_text()
    index_at = reference.field("index")
    if not index_at.present:
        index_at = result.field("ruleIndex")
    index = index_at.opt_index()
    named = reference.field("toolComponent")
    component = tool.component(named)
    if index is not None:
        rule = _at(tool.rules(component), index, index_at, f"{component.path}.rules")
        return rule_id or rule.field("id").text(), rule
    if rule_id is None:
        raise result.error("names no rule: expected ruleId, rule.id, ruleIndex or rule.index")
    return rule_id, tool.rule_by_id(rule_id, component if named.present else None)


def _severity(result: _Node, rule: _Node | None) -> str:
    """The alert's severity: the rule's security band, else the result's SARIF level."""
    described = rule if rule is not None else _Node(None, "")
    score = described.field("properties").opt_object().field("security-severity")
    default = described.field("defaultConfiguration").opt_object().field("level")
    level, default_level = result.field("level").choice(LEVELS), default.choice(LEVELS)
    if score.present:
        return _security_band(score)
    if level is not None:
        return level
    if result.field("kind").choice(KINDS) not in (None, "fail"):
        return "none"
    return default_level or DEFAULT_LEVEL


def _security_band(score_at: _Node) -> str:
    """GitHub's band for a `security-severity` score (a numeric string, 0 to 10)."""
    score = _number(score_at.value)
    if not 0.0 <= score <= 10.0:
        raise score_at.wrong("a numeric string from 0 to 10")
    if score > 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0.0 else "none"


def _number(value: object) -> float:
    """A numeric string (or a JSON number) as a float; NaN when it is neither."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return math.nan
    try:
        return float(value)
    except (ValueError, OverflowError):
        return math.nan


def _location(result: _Node) -> str | None:
    """The URI of the result's first location's file, if it gives one."""
    locations = result.field("locations").opt_items()
    if not locations:
        return None
    artifact = (locations[0].object().field("physicalLocation").opt_object()
                .field("artifactLocation").opt_object())
    return artifact.field("uri").opt_text()
