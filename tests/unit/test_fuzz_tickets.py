"""Hostile tickets, through the adapters' parsing and intake, get nowhere.

Proven here, for generated tickets (near-valid ones with one or two hostile fields,
arbitrary or crafted YAML, and Jira issues with hostile field values):
- a local ticket file is either read, or refused with the adapter's documented error: a
  `ValueError` whose message names the file and says what is wrong with it; a YAML tag
  that would build a Python object builds nothing;
- a ticket read is either a valid `ChangeRequest` or a list of problems, each naming
  the field it is about, each a bounded line (a 100 kB string or a YAML alias bomb is
  not repeated back in full);
- a valid change has the ticket's key as its id, a catalog service, a plain version and
  an author who is one person in the roster; and the production deploy it leads to runs
  the catalog's argv with nothing from the ticket but that version.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from config.jira import JiraMapping
from config.loader import Config
from config.settings import PROJECT_ROOT, Settings
from domain.intake import VERSION, validate_ticket
from domain.models import ChangeRequest, CommandResult, Ticket
from integrations.changelog_sql import SqlChangeLog
from integrations.factory import Adapters
from integrations.http_checks import HttpChecks
from integrations.jira_tickets import JiraChangeTickets
from integrations.local_tickets import LocalChangeTickets
from integrations.outbox import OutboxNotifier
from tasks.deployment import deploy_to_production
from tests.fakes.jira_server import FakeJira
from tests.support.jira import jira_project, with_evidence_values

KEY = "CHG-7"
PREVIOUS = "1.0.0"
EXAMPLES = ("CHG-101", "CHG-105", "CHG-201")
"""A normal, a standard and an emergency ticket: the starting points of near-valid ones."""

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HOSTILE = [
    "; rm -rf /", "$(id)", "`id`", "1.1.0; touch /tmp/pwned", "1.1.0 && id", "1.1.0|sh",
    "{python}", "{version}", "{var_dir}/../../etc", "{0}", "{__class__.__mro__}",
    "../../../etc/passwd", "..", "/", "-rf", "--state-dir=/", "1.1.0\x00", "\x00id",
    "\x1b[2J", "1.1.0\n--version=6.6.6", "\r\n", "\u202e0.1.1", "\uff11.\uff11.0",
    " 1.1.0", "1.1.0 ", "sample\n", "sample/../sample",
]
"""Shell metacharacters, format placeholders, paths, control characters, lookalikes."""

PAYLOADS = [text for text in HOSTILE if set(text) & set(";$`{}|&\x00\n\x1b\u202e\uff11")]
"""The hostile strings no argv may hold: none can be part of a plain version."""

PEOPLE = ["alice", "erin", "deploybot", "zed", "jira:5b10a2844c20165700ede21a"]
"""Authors and owners: a roster id, a lead, the shared account, strangers."""

ANSWERS = {"CHG-7.yaml: not valid YAML", "CHG-7.yaml: empty; expected a mapping",
           "CHG-7.yaml: expected a mapping of change fields, got",
           "CHG-7.yaml: field names must be text, got", "CHG-7.yaml: status must be text, got",
           "CHG-7.yaml: watchers must be a list of roster ids", "CHG-7.yaml: not UTF-8 text"}
"""How `LocalChangeTickets.get` refuses a file it cannot read as a ticket."""

LONGEST_PROBLEM = 1_000

VERSIONS = ["1.1.0", "1.1.0+build.7", "2.0.0-rc_1", "9" * 64, "9" * 65, "v1", "1..1", "-1"]
"""Plain versions, up to the longest allowed, and a few that are not."""

long_text = st.just(100_000).map(lambda size: "x" * size)
texts = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30), long_text)
scalars = st.one_of(
    texts, st.sampled_from(PEOPLE), st.sampled_from(VERSIONS),
    st.integers(min_value=-10**30, max_value=10**30), st.floats(), st.booleans(), st.none())
hostile_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["value", "name", "trigger", "owner", "reviewers", "$(id)"]), inner,
        max_size=3), max_leaves=6)

PATHS: list[tuple[str, ...]] = [
    (name,) for name in ("summary", "description", "scope", "risk_assessment", "testing_plan",
                         "category", "service", "version", "author", "rollback_plan",
                         "labels", "components", "changed_paths", "evidence", "id", "status",
                         "watchers", "emergency_trigger", "incident_ref",
                         "standard_procedure", "change_kind", "$(id)")
] + [("rollback_plan", part) for part in ("trigger", "steps", "owner", "verification",
                                          "time_estimate_minutes")] + [
    ("evidence", "code_review", "reviewers"), ("evidence", "ci", "status"),
    ("evidence", "sast", "sarif"), ("evidence", "staging_passed")]
TEXT_PATHS: list[tuple[str, ...]] = [
    ("summary",), ("description",), ("scope",), ("risk_assessment",), ("testing_plan",),
    ("rollback_plan", "trigger"), ("rollback_plan", "steps"), ("rollback_plan", "verification"),
    ("evidence", "ci", "status"), ("evidence", "sast", "sarif"), ("standard_procedure",),
    ("change_kind",)]
"""Free text: hostile strings here leave a valid change, which is then deployed."""

mutations = st.one_of(
    st.tuples(st.sampled_from(PATHS), hostile_values),
    st.tuples(st.sampled_from(TEXT_PATHS), texts),
    st.tuples(st.just(("version",)), st.sampled_from(VERSIONS) | texts),
    st.tuples(st.sampled_from([("author",), ("rollback_plan", "owner")]), st.sampled_from(PEOPLE)),
    st.tuples(st.just(("id",)), st.sampled_from(["CHG-102", KEY]) | texts),
    st.tuples(st.sampled_from([("labels",), ("components",), ("changed_paths",)]),
              st.lists(texts, max_size=3)))


def example(key: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (PROJECT_ROOT / "examples" / "tickets" / f"{key}.yaml").read_text())
    return loaded


def put(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set `path` in `document`, making its parents mappings if they are not."""
    for part in path[:-1]:
        if not isinstance(document.get(part), dict):
            document[part] = {}
        document = document[part]
    document[path[-1]] = value


@st.composite
def near_valid_documents(draw: st.DrawFn) -> str:
    """An example ticket with one or two fields set to hostile values, as YAML.

    Two fields may share one value: YAML then writes an anchor and an alias.
    """
    document = copy.deepcopy(example(draw(st.sampled_from(EXAMPLES))))
    path, value = draw(mutations)
    put(document, path, value)
    if draw(st.booleans()):
        second_path, second = draw(mutations)
        put(document, second_path, value if draw(st.booleans()) else second)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=draw(st.booleans()))


def bomb(where: str, levels: int = 6) -> str:
    """An emergency ticket whose `where` is a YAML alias bomb: 9**levels strings from a few
    lines."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    document = example("CHG-201")
    document.pop(where, None)
    return "\n".join(lines) + "\n" + yaml.safe_dump(document) + f"{where}: *l{levels - 1}\n"


def crafted(marker: Path) -> dict[str, str]:
    """Documents that are not tickets, or that try to make the parser do something."""
    base = yaml.safe_dump(example("CHG-101"), sort_keys=False)
    touch = f"[['touch', '{marker}']]"
    return {
        "empty": "", "null": "~", "a list": "- a\n- b\n", "a number": "42",
        "a string": "'just text'", "unclosed": "[[[[", "unclosed in a mapping": "a: [",
        "a tab": "\t: x", "two documents": "--- a\n--- b\n", "a directive": "%YAML 1.1\n---\n",
        "os.system": f"summary: !!python/object/apply:os.system ['touch {marker}']\n",
        "Popen": f"!!python/object/new:subprocess.Popen {touch}\n",
        "check_output in a ticket": f"{base}description: "
                                    f"!!python/object/apply:subprocess.check_output {touch}\n",
        "a python name": "summary: !!python/name:os.system\n",
        "a key twice": f"{base}summary: again\n", "a list as key": "? [a]\n: 1\n",
        "a mapping as key": "? {a: 1}\n: 1\n", "a number as key": "1: x\n",
        "null as key": "null: x\n", "true as key": "true: x\n",
        "5,000 digits": "version: " + "9" * 5000 + "\n", "month 13": "version: 2026-13-45\n",
        "bad timestamp": "version: !!timestamp 'x'\n", "bad int": "version: !!int 'x'\n",
        "bad float": "version: !!float 'x'\n", "bad binary": "summary: !!binary '%%%'\n",
        "a set": "summary: !!set {a, b}\n", "3,000 levels": "summary: " + "[" * 3000 + "]" * 3000,
        "a cycle": "a: &a [*a]\nsummary: *a\n", "a merge key": "base: &b {summary: x}\n<<: *b\n",
        "a raw NUL": "summary: a\x00b\n", "a BOM": "\ufeffsummary: x\n",
        "status a list": "status: [open]\n", "status blank": "status: ''\n",
        "watchers text": "watchers: alice\n", "watchers numbers": "watchers: [1]\n",
        **{f"an alias bomb in {where}": bomb(where)
           for where in ("emergency_trigger", "incident_ref", "status", "labels", "version")},
    }


CRAFTED = list(crafted(Path("executed")))


class Recorder:
    """A command runner that runs nothing and keeps every argv it was given."""

    def __init__(self) -> None:
        self.argvs: list[list[str]] = []

    def run(self, argv: Any, timeout_seconds: float, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> CommandResult:
        self.argvs.append(list(argv))
        return CommandResult(argv=list(argv), exit_code=0, stdout="", stderr="",
                             duration_seconds=0.0)


class Unlogged:
    """A change log that keeps nothing: the deploy's records are not what is checked here."""

    def append(self, *args: Any) -> None:
        return None

    def record_intent(self, *args: Any) -> str:
        return "effect"

    def record_outcome(self, *args: Any) -> None:
        return None


class Harness:
    """A tickets folder, and adapters whose deploys are recorded instead of run."""

    def __init__(self, root: Path, config: Config) -> None:
        self.folder = root / "tickets"
        self.folder.mkdir()
        self.marker = root / "executed"
        self.config = config
        self.recorder = Recorder()
        self.settings = Settings(config_dir=PROJECT_ROOT / "config", var_dir=root / "var",
                                 tickets_dir=self.folder)
        self.adapters = Adapters(
            config=config, change_log=cast(SqlChangeLog, Unlogged()),
            tickets=LocalChangeTickets(self.folder), runner=self.recorder, checks=HttpChecks(),
            notifiers={"outbox": OutboxNotifier(root / "outbox.jsonl")}, settings=self.settings)

    def read(self, content: str | bytes) -> Ticket | ValueError:
        """The ticket file with `content`, as the local adapter reads it."""
        path = self.folder / f"{KEY}.yaml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        try:
            return LocalChangeTickets(self.folder).get(KEY)
        except ValueError as refused:
            return refused

    def deploy_argv(self, change: ChangeRequest) -> list[str]:
        """The argv the production deploy of `change` would run."""
        before = len(self.recorder.argvs)
        assert deploy_to_production.fn(self.adapters, change, PREVIOUS)
        (argv,) = self.recorder.argvs[before:]
        return argv


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory, config: Config) -> Harness:
    return Harness(tmp_path_factory.mktemp("fuzz"), config)


def outcome(name: str) -> None:
    """Count outcomes in hypothesis' statistics (`--hypothesis-show-statistics`)."""
    if currently_in_test_context():
        event(name)


def check_outcome(harness: Harness, ticket: Ticket) -> ChangeRequest | list[str]:
    """Validate `ticket` and check what a valid change or a refusal must be."""
    config = harness.config
    result = validate_ticket(ticket, config.policy, config.roster, config.services)
    if isinstance(result, list):
        outcome("problems")
        assert result, "a refusal must say why"
        fields = {*ChangeRequest.model_fields, *ticket.fields}
        for problem in result:
            assert any(problem.startswith((f"{name}: ", f"{name}.")) for name in fields), problem
            assert len(problem) < LONGEST_PROBLEM, problem[:200]
        return result
    outcome("a valid change")
    person = config.roster.get(result.author)
    assert result.id == ticket.key
    assert result.service in config.services.services
    assert VERSION.match(result.version)
    assert person is not None and not person.shared_account
    argv = harness.deploy_argv(result)
    template = config.services.services[result.service].environments["production"].deploy
    assert argv == [arg.format(python=sys.executable, var_dir=harness.settings.var_dir,
                               service=result.service, environment="production",
                               version=result.version, previous_version=PREVIOUS)
                    for arg in template.argv]
    leaked = [payload for payload in PAYLOADS if any(payload in arg for arg in argv)]
    assert not leaked, f"ticket text in the deploy argv: {leaked}"
    return result


def check_refusal(refused: ValueError) -> None:
    message = str(refused)
    assert message.startswith(tuple(ANSWERS)), message[:300]
    assert len(message) < LONGEST_PROBLEM, message[:300]


def read_or_refused(harness: Harness, content: str | bytes) -> None:
    read = harness.read(content)
    if isinstance(read, ValueError):
        outcome("refused by the adapter")
        check_refusal(read)
    else:
        check_outcome(harness, read)
    assert not harness.marker.exists(), "a YAML tag ran a command"


@FUZZ
@given(document=near_valid_documents())
def test_a_near_valid_ticket_file_is_a_valid_change_or_named_problems(
        harness: Harness, document: str) -> None:
    read_or_refused(harness, document)


@FUZZ
@given(content=st.one_of(st.text(max_size=200), st.binary(max_size=64),
                         near_valid_documents().map(lambda text: text.replace(": ", ":", 1))))
def test_any_file_is_read_or_refused_with_the_adapters_error(
        harness: Harness, content: str | bytes) -> None:
    read_or_refused(harness, content)


@pytest.mark.parametrize("name", CRAFTED)
def test_a_crafted_file_is_read_or_refused_and_runs_nothing(harness: Harness, name: str) -> None:
    read_or_refused(harness, crafted(harness.marker)[name])


def test_a_near_valid_ticket_is_still_a_change(harness: Harness) -> None:
    """The fuzzing starts from tickets that pass: the mutation is what is refused."""
    for key in EXAMPLES:
        read = harness.read(yaml.safe_dump(example(key)))
        assert isinstance(read, Ticket)
        assert isinstance(check_outcome(harness, read), ChangeRequest), key


@pytest.mark.parametrize("where", ["emergency_trigger", "incident_ref", "status", "labels"])
def test_a_yaml_alias_bomb_is_refused_in_a_line_not_repeated_back(
        harness: Harness, where: str) -> None:
    read = harness.read(bomb(where))  # 531,441 strings; with 9 levels, 387 million
    if isinstance(read, ValueError):
        assert str(read).startswith("CHG-7.yaml: status must be text, got [[[")
        assert len(str(read)) < 200
        return
    problems = check_outcome(harness, read)
    assert isinstance(problems, list)
    assert any(p.startswith(f"{where}") for p in problems)


# Jira: an issue's JSON with hostile values where people type them (custom fields, the
# summary and description, labels, components, the reporter), mapped by the adapter.

JIRA_FIELDS = ["category", "service", "version", "scope", "risk_assessment", "testing_plan",
               "rollback_trigger", "rollback_steps", "rollback_owner", "rollback_verification",
               "rollback_time_estimate_minutes", "changed_paths", "code_review_url", "ci_url",
               "sast_url", "standard_procedure", "change_kind", "emergency_trigger",
               "incident_ref", "code_reviewers", "ci_status", "ci_failed_tests",
               "sast_critical", "sast_high"]

ACCOUNTS = ["5b10a2844c20165700ede21a", "5b10a2844c20165700ede21c", "deploybot"]
"""Jira accounts: alice's and erin's (in the roster), and one that maps to no one."""

json_scalars = st.one_of(
    texts, st.sampled_from(PEOPLE), st.sampled_from(VERSIONS),
    st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none())
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["value", "name", "displayName", "accountId", "key", "$(id)"]), inner,
        max_size=3), max_leaves=6)


@pytest.fixture(scope="module")
def jira(config: Config) -> Iterator[tuple[JiraChangeTickets, dict[str, Any]]]:
    """The adapter, connected once to a local Jira, and CHG-101 as that Jira's JSON."""
    with FakeJira(mode="cloud") as fake:
        project = jira_project(fake, with_evidence_values(config.jira or JiraMapping()))
        key = project.create_change("CHG-101")
        s = project.settings()
        adapter = JiraChangeTickets(s["jira_url"], project.mapping, config.roster,
                                    SecretStr(s["jira_token"]), email=s["jira_email"],
                                    timeout_seconds=2)
        yield adapter, adapter.raw(f"issue/{key}")


@st.composite
def hostile_issues(draw: st.DrawFn, adapter: JiraChangeTickets,
                   raw: dict[str, Any]) -> dict[str, Any]:
    issue = copy.deepcopy(raw)
    fields = issue["fields"]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        target = draw(st.sampled_from([*JIRA_FIELDS, "summary", "description", "labels",
                                       "components", "reporter"]))
        if target == "labels":
            fields["labels"] = draw(st.lists(texts, max_size=3))
        elif target == "components":
            fields["components"] = [{"name": v} for v in draw(st.lists(json_scalars,
                                                                      max_size=3))]
        elif target == "reporter":
            fields["reporter"] = draw(st.none() | st.builds(
                lambda account: {"accountId": account}, st.sampled_from(ACCOUNTS) | json_scalars))
        else:
            fields[adapter.field_ids.get(target, target)] = draw(json_values)
    return issue


def test_the_jira_issue_unchanged_is_a_valid_change(
        harness: Harness, jira: tuple[JiraChangeTickets, dict[str, Any]]) -> None:
    adapter, raw = jira
    assert isinstance(check_outcome(harness, adapter.to_ticket(raw)), ChangeRequest)


@FUZZ
@given(data=st.data())
def test_a_jira_issue_with_hostile_values_is_a_valid_change_or_named_problems(
        harness: Harness, jira: tuple[JiraChangeTickets, dict[str, Any]],
        data: st.DataObject) -> None:
    adapter, raw = jira
    issue = data.draw(hostile_issues(adapter, raw))
    ticket = adapter.to_ticket(issue)
    assert ticket.key == raw["key"]
    check_outcome(harness, ticket)
