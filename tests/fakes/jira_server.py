"""A local, threaded, stateful Jira for tests and benchmarks, driven by the real `jira` library.

`FakeJira` answers the part of the Jira REST API v2 (and of the Jira Service Management
approval API) that changeflow needs, in the shapes `jira` 3.10.x requests and parses. It acts
as Jira Cloud (Basic auth with email and API token, `/search/jql` with `nextPageToken`) or
as Data Center (Bearer personal access tokens, `/search` with `startAt`/`total`).

Tests set it up and act as people in Jira through the Python admin API (`add_user`,
`create_issue`, `transition`, `answer_approval`, ...), inject faults (`fail`, `stall`,
`malformed`) and assert on what the client asked for (`requests`, `count`).

Choices where Jira varies or is unspecified (documented once, here):

* Times are UTC (`+0000`) and every user's time zone is UTC, so JQL dates without a zone
  are read as UTC. `updated` has millisecond resolution and strictly increases.
* A transition whose source is `None` ("any status") is offered from every status but its
  target. Allowed users are matched by accountId (Cloud) or name (DC).
* JSM approvals: any one approver decides (JSM's default "1 approver needed"); the issue is
  not transitioned by a decision, but `updated` is bumped.
* A search without `ORDER BY` returns the newest issues first (`created DESC`).
* `POST issueLink` with `inwardIssue` A and `outwardIssue` B means "A <outward> B" (A blocks
  B, A causes B): A shows B as `outwardIssue`, B shows A as `inwardIssue`. This is how the
  library reads it too (`create_issue_link` swaps the issues when given the inward phrase).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

Mode = Literal["cloud", "datacenter"]
# (transition name, from status or None for any, to status, allowed users or None for all)
_Rule = tuple[str, str | None, str, "Iterable[FakeUser | str] | None"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_ISSUE = "Issue does not exist or you do not have permission to see it."
_NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
_SEARCH_REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
_UNBOUNDED = ("Unbounded JQL queries are not allowed here. "
              "Please add a search restriction to your query.")
_CUSTOM_TYPES = {
    "string": "textfield", "number": "float", "array": "multiselect", "option": "select",
    "date": "datepicker", "datetime": "datetimepicker", "user": "userpicker",
}
_LINK_TYPES = (
    ("10000", "Blocks", "is blocked by", "blocks"),
    ("10001", "Relates", "relates to", "relates to"),
    ("10002", "Problem/Incident", "is caused by", "causes"),
)
_DONE = {"done", "closed", "resolved", "cancelled", "canceled", "rejected", "declined"}
_CATEGORIES = {"new": (2, "To Do", "blue-gray"), "indeterminate": (4, "In Progress", "yellow"),
               "done": (3, "Done", "green")}
# (id, name, schema, navigable, settable)
_SYSTEM_FIELDS: tuple[tuple[str, str, dict[str, Any], bool, bool], ...] = (
    ("summary", "Summary", {"type": "string", "system": "summary"}, True, True),
    ("description", "Description", {"type": "string", "system": "description"}, True, True),
    ("status", "Status", {"type": "status", "system": "status"}, True, False),
    ("issuetype", "Issue Type", {"type": "issuetype", "system": "issuetype"}, True, False),
    ("project", "Project", {"type": "project", "system": "project"}, True, False),
    ("reporter", "Reporter", {"type": "user", "system": "reporter"}, True, False),
    ("created", "Created", {"type": "datetime", "system": "created"}, True, False),
    ("updated", "Updated", {"type": "datetime", "system": "updated"}, True, False),
    ("labels", "Labels", {"type": "array", "items": "string", "system": "labels"}, True, True),
    ("priority", "Priority", {"type": "priority", "system": "priority"}, True, True),
    ("components", "Components",
     {"type": "array", "items": "component", "system": "components"}, True, True),
    ("issuelinks", "Linked Issues",
     {"type": "array", "items": "issuelinks", "system": "issuelinks"}, True, False),
    ("comment", "Comment", {"type": "comments-page", "system": "comment"}, False, False),
)


def jira_time(ms: int) -> str:
    """Format epoch milliseconds the way Jira does: `2026-11-26T10:00:00.000+0000`."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}+0000"


def epoch_millis(when: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are refused: say the zone)."""
    if when.tzinfo is None:
        raise ValueError("pass an aware datetime")
    return (when - _EPOCH) // timedelta(milliseconds=1)


class FakeJiraError(Exception):
    """A refusal, in Jira's error shape; raised by the admin API and answered over HTTP."""

    def __init__(self, status: int, messages: Sequence[str] = (),
                 errors: Mapping[str, str] | None = None, *,
                 payload: dict[str, Any] | None = None) -> None:
        self.status = status
        self.payload = payload if payload is not None else {
            "errorMessages": list(messages), "errors": dict(errors or {})}
        super().__init__(f"HTTP {status}: {json.dumps(self.payload)}")


def _not_found() -> FakeJiraError:
    return FakeJiraError(404, [_NO_ISSUE])


def _jql_error(message: str) -> FakeJiraError:
    return FakeJiraError(400, [f"Error in the JQL Query: {message}"])


def _sd_error(status: int, message: str) -> FakeJiraError:
    return FakeJiraError(status, payload={
        "errorMessage": message, "i18nErrorMessage": {"i18nKey": "sd.fake", "parameters": []}})


@dataclass(frozen=True)
class FakeUser:
    """A Jira user. `id` is the accountId on Cloud and the username on Data Center."""

    id: str
    display_name: str
    email: str
    token: str = field(repr=False)
    cloud: bool
    key: str | None = None

    @property
    def auth(self) -> dict[str, Any]:
        """Keyword arguments for `jira.JIRA` that log in as this user."""
        if self.cloud:
            return {"basic_auth": (self.email, self.token)}
        return {"token_auth": self.token}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake answered (credentials are never recorded)."""

    method: str
    path: str
    query: dict[str, str]  # repeated parameters joined with ","
    user: str | None  # FakeUser.id of the authenticated caller
    status: int
    body: Any = None  # the parsed JSON body, if any
    fault: str | None = None  # "fail", "stall" or "malformed" when one was injected


@dataclass
class _Field:
    id: str
    name: str
    schema: dict[str, Any]
    custom: bool
    navigable: bool = True
    settable: bool = True

    def json(self) -> dict[str, Any]:
        clauses = ([f"cf[{self.id.removeprefix('customfield_')}]", self.name] if self.custom
                   else [self.id])
        return {"id": self.id, "key": self.id, "name": self.name, "custom": self.custom,
                "orderable": self.settable, "navigable": self.navigable, "searchable": True,
                "clauseNames": clauses, "schema": self.schema}


@dataclass(frozen=True)
class _Transition:
    id: str
    name: str
    source: str | None
    target: str
    allowed: frozenset[str] | None


@dataclass
class _Project:
    id: str
    key: str
    name: str
    issue_types: list[str]
    initial: str = "Open"
    workflow: list[_Transition] = field(default_factory=list)
    counter: int = 0


@dataclass
class _Comment:
    id: str
    author: FakeUser | None
    body: str
    created: int


@dataclass
class _History:
    id: str
    author: FakeUser | None
    created: int
    items: list[dict[str, Any]]


@dataclass
class _Approval:
    id: str
    name: str
    approvers: list[FakeUser]
    created: int
    decisions: dict[str, str] = field(default_factory=dict)
    final: str = "pending"
    completed: int | None = None


@dataclass(eq=False)
class _Issue:
    id: str
    key: str
    number: int
    project: _Project
    issue_type: str
    status: str
    created: int
    updated: int
    reporter: FakeUser | None
    values: dict[str, Any]
    histories: list[_History] = field(default_factory=list)
    comments: list[_Comment] = field(default_factory=list)
    links: list[_Link] = field(default_factory=list)
    remote_links: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[_Approval] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class _Link:
    id: str
    type: tuple[str, str, str, str]
    inward: _Issue  # the source: "inward <outward phrase> outward"
    outward: _Issue


@dataclass
class _Fault:
    kind: Literal["fail", "stall", "malformed"]
    pattern: re.Pattern[str]
    method: str | None
    times: int
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    seconds: float = 0.0


# --- JQL ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
                    r"""|(?P<op>!=|>=|<=|!~|=|>|<|~)|(?P<punct>[(),])"""
                    r"""|(?P<word>[^\s"'(),=!<>~]+))""")
_EQUALITY_FIELDS = {"project": "project", "status": "status", "issuetype": "issuetype",
                    "type": "issuetype", "key": "key", "issuekey": "key", "issue": "key",
                    "labels": "labels"}
_DATE_FIELDS = {"updated": "updated", "updateddate": "updated", "created": "created",
                "createddate": "created"}
_ORDER_KEYS: dict[str, Callable[[_Issue], Any]] = {
    "updated": lambda i: i.updated, "created": lambda i: i.created,
    "key": lambda i: (i.project.key, i.number), "issuekey": lambda i: (i.project.key, i.number),
    "id": lambda i: int(i.id), "status": lambda i: i.status.lower(),
    "project": lambda i: i.project.key,
}
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")


@dataclass(frozen=True)
class _Clause:
    field: str  # canonical: project, status, issuetype, key, updated, created
    op: str  # =, !=, in, not in, >, >=, <, <=
    values: tuple[str, ...]


@dataclass(frozen=True)
class _Query:
    clauses: tuple[_Clause, ...]
    order: tuple[tuple[str, bool], ...]  # (field, descending)


class _JqlParser:
    """Parses the JQL subset: clauses joined by AND, then an optional ORDER BY."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []  # (kind, text) with quotes removed
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                if text[pos:].strip():
                    raise _jql_error(f"unexpected character at position {pos}.")
                break
            kind = match.lastgroup or "word"
            raw = match.group(kind)
            value = re.sub(r"\\(.)", r"\1", raw[1:-1]) if kind == "str" else raw
            self.tokens.append((kind, value))
            pos = match.end()
        self.pos = 0

    def parse(self) -> _Query:
        clauses: list[_Clause] = []
        if self.tokens and not self._keyword("order"):
            clauses.append(self._clause())
            while self._keyword("and"):
                self.pos += 1
                clauses.append(self._clause())
        order: list[tuple[str, bool]] = []
        if self._keyword("order"):
            self.pos += 1
            self._expect_keyword("by")
            order.append(self._order_item())
            while self._peek() == ("punct", ","):
                self.pos += 1
                order.append(self._order_item())
        if self.pos < len(self.tokens):
            word = self.tokens[self.pos][1]
            hint = " (the fake supports AND only)" if word.lower() in ("or", "not") else ""
            raise _jql_error(f"unsupported '{word}'{hint}.")
        return _Query(tuple(clauses), tuple(order))

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        return token is not None and token[0] == "word" and token[1].lower() == word

    def _expect_keyword(self, word: str) -> None:
        if not self._keyword(word):
            raise _jql_error(f"expected '{word.upper()}'.")
        self.pos += 1

    def _next(self, what: str) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise _jql_error(f"expected {what} at the end of the query.")
        self.pos += 1
        return token

    def _value(self) -> str:
        kind, value = self._next("a value")
        if kind not in ("str", "word") or (kind == "word" and value.lower() in ("empty", "null")):
            raise _jql_error(f"unsupported value '{value}'.")
        return value

    def _clause(self) -> _Clause:
        kind, name = self._next("a field")
        if kind not in ("word", "str"):
            raise _jql_error(f"unsupported '{name}' (no parentheses or functions).")
        canonical = _EQUALITY_FIELDS.get(name.lower()) or _DATE_FIELDS.get(name.lower())
        if canonical is None:
            raise _jql_error(f"the fake cannot search on field '{name}'.")
        kind, op = self._next("an operator")
        if kind == "word" and op.lower() == "not":
            self._expect_keyword("in")
            op = "not in"
        elif kind == "word":
            op = op.lower()
        allowed = ("=", "!=", "in", "not in") if canonical in _EQUALITY_FIELDS.values() else (
            "=", "!=", ">", ">=", "<", "<=")
        if op not in allowed:
            raise _jql_error(f"the operator '{op}' is not supported for field '{name}'.")
        if op not in ("in", "not in"):
            return _Clause(canonical, op, (self._value(),))
        if self._next("'('") != ("punct", "("):
            raise _jql_error("expected '(' after IN.")
        values = [self._value()]
        while self._peek() == ("punct", ","):
            self.pos += 1
            values.append(self._value())
        if self._next("')'") != ("punct", ")"):
            raise _jql_error("expected ')' to close the list.")
        return _Clause(canonical, op, tuple(values))

    def _order_item(self) -> tuple[str, bool]:
        _, name = self._next("a field to order by")
        if name.lower() not in _ORDER_KEYS:
            raise _jql_error(f"the fake cannot order by '{name}'.")
        descending = False
        if self._keyword("asc") or self._keyword("desc"):
            descending = self.tokens[self.pos][1].lower() == "desc"
            self.pos += 1
        return name.lower(), descending


def _jql_time(text: str, field_name: str) -> int:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    for fmt in _DATE_FORMATS:
        try:
            return epoch_millis(datetime.strptime(text, fmt).replace(tzinfo=UTC))
        except ValueError:
            continue
    raise FakeJiraError(400, [
        f"Date value '{text}' for field '{field_name}' is invalid. Valid formats include: "
        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd'."])


def _matcher(op: str, wanted: set[str], get: Callable[[_Issue], str]) -> Callable[[_Issue], bool]:
    if op in ("=", "in"):
        return lambda issue: get(issue) in wanted
    return lambda issue: get(issue) not in wanted


def _comparer(op: str, ms: int, get: Callable[[_Issue], int]) -> Callable[[_Issue], bool]:
    compare: dict[str, Callable[[int], bool]] = {
        "=": lambda v: v == ms, "!=": lambda v: v != ms, ">": lambda v: v > ms,
        ">=": lambda v: v >= ms, "<": lambda v: v < ms, "<=": lambda v: v <= ms}
    check = compare[op]
    return lambda issue: check(get(issue))


# --- the fake ----------------------------------------------------------------------------


class FakeJira:
    """A Jira Cloud or Data Center on 127.0.0.1, for use as a context manager.

    Example:
        with FakeJira(mode="cloud") as jira_fake:
            alice = jira_fake.add_user("Alice Approver")
            key = jira_fake.create_issue("CHG", {"summary": "Deploy 2.1.0"})
            client = JIRA(server=jira_fake.url, **alice.auth, max_retries=0, timeout=5)
    """

    def __init__(self, mode: Mode = "cloud", *, port: int = 0) -> None:
        """Set up the state; the server starts on `__enter__`.

        Args:
            mode: "cloud" or "datacenter": auth scheme, search endpoints, user shapes.
            port: TCP port on 127.0.0.1; 0 picks a free one.
        """
        if mode not in ("cloud", "datacenter"):
            raise ValueError(f"mode must be 'cloud' or 'datacenter', not {mode!r}")
        self.mode: Mode = mode
        self._port = port
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._records: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._users: dict[str, FakeUser] = {}
        self._fields: dict[str, _Field] = {
            fid: _Field(fid, name, schema, False, nav, settable)
            for fid, name, schema, nav, settable in _SYSTEM_FIELDS}
        self._next_custom = 10010
        self._statuses: dict[str, tuple[str, str, str]] = {}  # lower name -> (id, name, category)
        self._issue_types: dict[str, str] = {}  # name -> id
        self._projects: dict[str, _Project] = {}
        self._issues: dict[str, _Issue] = {}
        self._by_id: dict[str, _Issue] = {}
        self._counter = 10000
        self._last_ms = 0
        self._version = 0
        self._search_cache: tuple[str, int, list[_Issue]] | None = None
        self.add_project("CHG", "Change Management", issue_types=("Change",))
        self.add_project("INC", "Incidents", issue_types=("Incident",))

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FakeJira:
        """Start serving in a daemon thread."""
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.api = _Api(self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fake-jira", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Wake stalled handlers, stop the server, join its threads and close the socket."""
        self._closing.set()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
            self._server.server_close()
        self._server = None

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321` (only while running)."""
        if self._server is None:
            raise RuntimeError("FakeJira is not running: use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- recording and faults ----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request answered so far, in order."""
        with self._lock:
            return list(self._records)

    def clear_requests(self) -> None:
        """Forget the recorded requests (e.g. after a test's setup)."""
        with self._lock:
            self._records.clear()

    def count(self, method: str | None = None, path_regex: str | None = None) -> int:
        """Number of recorded requests with this method and a path matching `path_regex`."""
        pattern = re.compile(path_regex) if path_regex else None
        return sum(1 for r in self.requests
                   if (method is None or r.method == method.upper())
                   and (pattern is None or pattern.search(r.path)))

    def fail(self, path_regex: str, status: int = 429, *,
             retry_after: str | int | datetime | None = None, times: int = 1,
             method: str | None = None, body: Any = None,
             headers: Mapping[str, str] | None = None) -> None:
        """Answer the next `times` matching requests with `status` instead of serving them.

        Args:
            path_regex: searched (`re.search`) in the request path, without the query.
            status: the status to answer, e.g. 429, 503, 400.
            retry_after: `Retry-After` value: seconds (int or str), an HTTP-date string, or an
                aware datetime formatted as an HTTP-date.
            times: how many matching requests get the fault.
            method: only requests with this method; None for any.
            body: JSON body; by default Jira's error shape with the status phrase.
            headers: extra response headers.
        """
        extra = dict(headers or {})
        if isinstance(retry_after, datetime):
            extra["Retry-After"] = format_datetime(retry_after.astimezone(UTC), usegmt=True)
        elif retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        if body is None:
            body = {"errorMessages": [HTTPStatus(status).phrase], "errors": {}}
        self._add_fault(_Fault("fail", re.compile(path_regex), method, times, status, extra, body))

    def stall(self, path_regex: str, seconds: float, *, times: int = 1,
              method: str | None = None) -> None:
        """Wait `seconds` (or until the fake closes) before serving matching requests."""
        self._add_fault(_Fault("stall", re.compile(path_regex), method, times, seconds=seconds))

    def malformed(self, path_regex: str, *, times: int = 1, method: str | None = None) -> None:
        """Answer matching requests with 200 and a body that is not valid JSON."""
        self._add_fault(_Fault("malformed", re.compile(path_regex), method, times))

    def _add_fault(self, fault: _Fault) -> None:
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        fault.method = fault.method.upper() if fault.method else None
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if (fault.method is None or fault.method == method) and fault.pattern.search(path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._records.append(record)

    # --- users and auth ----------------------------------------------------------------------

    def add_user(self, display_name: str, email: str | None = None, *,
                 account_id: str | None = None, name: str | None = None,
                 token: str | None = None) -> FakeUser:
        """Add a user who can log in: Cloud with (email, token), DC with token as a PAT.

        Args:
            display_name: e.g. "Alice Approver".
            email: defaults to the first word of the display name at example.com.
            account_id: Cloud accountId; generated when omitted.
            name: DC username; defaults to the email's local part.
            token: the API token (Cloud) or personal access token (DC); random by default.
        """
        email = email or f"{display_name.split()[0].lower()}@example.com"
        with self._lock:
            self._counter += 1
            if self.mode == "cloud":
                uid = account_id or f"5b10a2844c20165700ede{self._counter:05d}"
                user = FakeUser(uid, display_name, email, token or secrets.token_urlsafe(18), True)
            else:
                uid = name or email.split("@")[0]
                user = FakeUser(uid, display_name, email, token or secrets.token_urlsafe(24),
                                False, key=f"JIRAUSER{self._counter}")
            if uid in self._users or any(u.email.lower() == email.lower()
                                         for u in self._users.values()):
                raise ValueError(f"user {uid} / {email} exists already")
            self._users[uid] = user
            return user

    def rename_user(self, user: FakeUser, display_name: str, email: str) -> FakeUser:
        """Change a user's display name and e-mail (their account id stays)."""
        with self._lock:
            renamed = replace(user, display_name=display_name, email=email)
            self._users[user.id] = renamed
            return renamed

    def _user(self, ref: FakeUser | str | None) -> FakeUser | None:
        if ref is None or isinstance(ref, FakeUser):
            return ref
        for user in self._users.values():
            if ref in (user.id, user.email):
                return user
        raise KeyError(f"no user {ref!r}")

    def _authenticate(self, header: str | None) -> FakeUser | None:
        scheme, _, value = (header or "").partition(" ")
        if self.mode == "cloud" and scheme.lower() == "basic":
            try:
                email, _, token = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            candidates = [u for u in self._users.values() if u.email.lower() == email.lower()]
        elif self.mode == "datacenter" and scheme.lower() == "bearer":
            token = value.strip()
            candidates = list(self._users.values())
        else:
            return None
        for user in candidates:
            if hmac.compare_digest(user.token.encode(), token.encode()):
                return user
        return None

    # --- fields, projects, workflows ---------------------------------------------------------

    def add_field(self, name: str, schema_type: str = "string", *,
                  items: str | None = None) -> str:
        """Add a custom field and return its id (`customfield_10010`, ...). Names may repeat."""
        with self._lock:
            number = self._next_custom
            self._next_custom += 1
            fid = f"customfield_{number}"
            plugin = _CUSTOM_TYPES.get(schema_type, schema_type)
            schema: dict[str, Any] = {
                "type": schema_type, "customId": number,
                "custom": f"com.atlassian.jira.plugin.system.customfieldtypes:{plugin}"}
            if schema_type == "array":
                schema["items"] = items or "string"
            self._fields[fid] = _Field(fid, name, schema, True)
            return fid

    def rename_field(self, old: str, new: str) -> None:
        """Rename a field, given its id or its (unique) current name."""
        with self._lock:
            self._fields[self._field_id(old)].name = new
            self._version += 1

    def _field_id(self, name_or_id: str) -> str:
        if name_or_id in self._fields:
            return name_or_id
        found = [f.id for f in self._fields.values() if f.name.lower() == name_or_id.lower()]
        if len(found) != 1:
            raise KeyError(f"{len(found)} fields are named {name_or_id!r}; use the id")
        return found[0]

    def add_project(self, key: str, name: str | None = None, *,
                    issue_types: Sequence[str] = ("Task",)) -> None:
        """Add a project with the default workflow (Open -> In Progress -> Done)."""
        with self._lock:
            for type_name in issue_types:
                self._issue_types.setdefault(type_name, str(10001 + len(self._issue_types)))
            self._projects[key] = _Project(str(10000 + len(self._projects)), key, name or key,
                                           list(issue_types))
        self.set_workflow(key, [("Start Progress", "Open", "In Progress", None),
                                ("Done", "In Progress", "Done", None),
                                ("Reopen", "Done", "Open", None)], initial="Open")

    def set_workflow(self, project: str, transitions: Iterable[_Rule], *,
                     initial: str | None = None) -> None:
        """Replace a project's workflow.

        Args:
            project: the project key.
            transitions: (name, from status or None for any, to status, allowed users or None
                for everyone). Transition ids are "11", "21", ... in this order.
            initial: status of new issues; by default the first transition's source.
        """
        with self._lock:
            proj = self._projects[project]
            rules = list(transitions)
            if not rules and initial is None:
                raise ValueError("a workflow without transitions needs an initial status")
            proj.workflow = [
                _Transition(str(11 + 10 * n), name, source, target,
                            None if allowed is None else frozenset(
                                self._user(u).id for u in allowed))  # type: ignore[union-attr]
                for n, (name, source, target, allowed) in enumerate(rules)]
            proj.initial = initial or next((t.source for t in proj.workflow if t.source),
                                           None) or proj.workflow[0].target
            for status in [proj.initial] + [s for t in proj.workflow for s in (t.source, t.target)]:
                if status is not None:
                    self._status(status)
            self._version += 1

    def _status(self, name: str) -> tuple[str, str, str]:
        known = self._statuses.get(name.lower())
        if known is None:
            category = "done" if name.lower() in _DONE else (
                "new" if name.lower() in ("open", "to do", "draft", "backlog") else "indeterminate")
            known = (str(10000 + len(self._statuses)), name, category)
            self._statuses[name.lower()] = known
        return known

    # --- issues: admin API -------------------------------------------------------------------

    def create_issue(self, project: str, fields: Mapping[str, Any] | None = None, *,
                     issue_type: str | None = None, status: str | None = None,
                     as_user: FakeUser | str | None = None,
                     created: datetime | None = None) -> str:
        """Create an issue directly (no HTTP) and return its key.

        Args:
            project: project key.
            fields: values by field id or unique name ("summary", "Risk", "customfield_10010").
            issue_type: defaults to the project's first issue type.
            status: start in this status instead of the workflow's initial one (no history).
            as_user: the reporter.
            created: creation time (also the first `updated`); now by default.
        """
        with self._lock:
            values = {self._field_id(k): v for k, v in (fields or {}).items()}
            proj = self._projects[project]
            issue = self._create(proj, issue_type or proj.issue_types[0], values,
                                 self._user(as_user),
                                 created=None if created is None else epoch_millis(created))
            if status is not None:
                issue.status = self._status(status)[1]
            return issue.key

    def update_fields(self, key: str, fields: Mapping[str, Any], *,
                      as_user: FakeUser | str | None = None) -> None:
        """Edit fields (by id or unique name) as a person would; records changelog items."""
        with self._lock:
            issue = self._issue(key)
            self._edit(issue, {self._field_id(k): v for k, v in fields.items()},
                       self._user(as_user))

    def transition(self, key: str, name: str, as_user: FakeUser | str, *,
                   fields: Mapping[str, Any] | None = None, comment: str | None = None) -> None:
        """Run a transition (by name or id) as `as_user`, under the same rules as HTTP."""
        with self._lock:
            issue = self._issue(key)
            user = self._user(as_user)
            for t in self._open_transitions(issue, user):
                if name.lower() in (t.name.lower(), t.id):
                    self._transition(issue, t, user,
                                     {self._field_id(k): v for k, v in (fields or {}).items()},
                                     [comment] if comment else [])
                    return
            raise FakeJiraError(400, [f"Transition '{name}' is not valid for {key} ({issue.status})"
                                      f" for user {user.id if user else None}."])

    def add_comment(self, key: str, body: str, as_user: FakeUser | str) -> str:
        """Comment on an issue as `as_user`; returns the comment id."""
        with self._lock:
            return self._comment(self._issue(key), body, self._user(as_user)).id

    def link_issues(self, type_name: str, inward_key: str, outward_key: str) -> str:
        """Link two issues ("inward <outward phrase> outward"); returns the link id."""
        with self._lock:
            link_type = next((t for t in _LINK_TYPES if t[1].lower() == type_name.lower()), None)
            if link_type is None:
                raise FakeJiraError(404, [f"No issue link type with name '{type_name}' found."])
            return self._link(link_type, self._issue(inward_key), self._issue(outward_key))

    def set_updated(self, key: str, when: datetime) -> None:
        """Set an issue's `updated` time (e.g. into the past, for incremental-sync tests)."""
        with self._lock:
            self._issue(key).updated = epoch_millis(when)
            self._version += 1

    def add_approval(self, key: str, name: str, approvers: Sequence[FakeUser | str]) -> str:
        """Add a pending JSM approval to an issue; returns the approval id."""
        with self._lock:
            issue = self._issue(key)
            self._counter += 1
            users = [u for u in (self._user(a) for a in approvers) if u is not None]
            approval = _Approval(str(self._counter), name, users, self._tick(issue))
            issue.approvals.append(approval)
            return approval.id

    def answer_approval(self, key: str, approval_id: str, as_user: FakeUser | str,
                        decision: Literal["approve", "decline"]) -> None:
        """Approve or decline as `as_user`, under the same rules as HTTP."""
        with self._lock:
            issue = self._issue(key)
            self._answer(issue, self._approval(issue, approval_id), self._user(as_user), decision)

    def issue(self, key: str, *, fields: str = "*all", expand: str = "") -> dict[str, Any]:
        """The issue as `GET /rest/api/2/issue/{key}` would show it (needs the server up)."""
        with self._lock:
            return _Views(self).issue(self._issue(key), self._select(fields.split(","), "*all"),
                                      set(expand.split(",")))

    # --- issues: operations shared by HTTP and admin -----------------------------------------

    def _tick(self, issue: _Issue | None = None) -> int:
        ms = max(time.time_ns() // 1_000_000, self._last_ms + 1)
        if issue is not None:
            ms = max(ms, issue.updated + 1)
            issue.updated = ms
        self._last_ms = ms
        self._version += 1
        return ms

    def _issue(self, key_or_id: str) -> _Issue:
        issue = self._issues.get(key_or_id.upper()) or self._by_id.get(key_or_id)
        if issue is None:
            raise _not_found()
        return issue

    def _check_values(self, values: Mapping[str, Any]) -> None:
        errors: dict[str, str] = {}
        for fid, value in values.items():
            fld = self._fields.get(fid)
            if fld is None or not fld.settable:
                errors[fid] = (f"Field '{fid}' cannot be set. It is not on the appropriate "
                               "screen, or unknown.")
                continue
            kind = fld.schema["type"]
            if value is None:
                if fid == "summary":
                    errors[fid] = "You must specify a summary of the issue."
            elif kind == "string" and not isinstance(value, str):
                errors[fid] = "Operation value must be a string"
            elif kind == "number" and (isinstance(value, bool)
                                       or not isinstance(value, int | float)):
                errors[fid] = "Operation value must be a number"
            elif kind == "array" and not isinstance(value, list):
                errors[fid] = "data was not an array"
            elif fid == "summary" and not value.strip():
                errors[fid] = "You must specify a summary of the issue."
        if errors:
            raise FakeJiraError(400, [], errors)

    def _create(self, proj: _Project, type_name: str, values: dict[str, Any],
                reporter: FakeUser | None, *, created: int | None = None) -> _Issue:
        if type_name not in proj.issue_types:
            raise FakeJiraError(400, [], {"issuetype": "Specify a valid issue type"})
        if not values.get("summary"):
            values.setdefault("summary", None)
        self._check_values(values)
        proj.counter += 1
        self._counter += 1
        now = self._tick() if created is None else created
        self._version += 1
        issue = _Issue(str(self._counter), f"{proj.key}-{proj.counter}", proj.counter, proj,
                       type_name, self._status(proj.initial)[1], now, now, reporter, dict(values))
        self._issues[issue.key] = issue
        self._by_id[issue.id] = issue
        return issue

    def _changes(self, issue: _Issue, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        items = []
        for fid, new in values.items():
            old = issue.values.get(fid)
            if old == new:
                continue
            fld = self._fields[fid]
            issue.values[fid] = new
            items.append({"field": fld.name if fld.custom else fid,
                          "fieldtype": "custom" if fld.custom else "jira", "fieldId": fid,
                          "from": None, "fromString": _display(old),
                          "to": None, "toString": _display(new)})
        return items

    def _history(self, issue: _Issue, author: FakeUser | None, items: list[dict[str, Any]]) -> None:
        self._counter += 1
        issue.histories.append(_History(str(self._counter), author, self._tick(issue), items))

    def _edit(self, issue: _Issue, values: Mapping[str, Any], author: FakeUser | None) -> None:
        self._check_values(values)
        items = self._changes(issue, values)
        if items:
            self._history(issue, author, items)

    def _open_transitions(self, issue: _Issue, user: FakeUser | None) -> list[_Transition]:
        current = issue.status.lower()
        return [t for t in issue.project.workflow
                if (t.source.lower() == current if t.source else t.target.lower() != current)
                and (t.allowed is None or (user is not None and user.id in t.allowed))]

    def _transition(self, issue: _Issue, t: _Transition, user: FakeUser | None,
                    values: Mapping[str, Any], comments: Sequence[Any]) -> None:
        self._check_values(values)
        old = self._status(issue.status)
        new = self._status(t.target)
        issue.status = new[1]
        items = [{"field": "status", "fieldtype": "jira", "fieldId": "status", "from": old[0],
                  "fromString": old[1], "to": new[0], "toString": new[1]}]
        self._history(issue, user, items + self._changes(issue, values))
        for body in comments:
            self._comment(issue, body, user)

    def _comment(self, issue: _Issue, body: Any, author: FakeUser | None) -> _Comment:
        if not isinstance(body, str) or not body.strip():
            raise FakeJiraError(400, [], {"comment": "Comment body can not be empty!"})
        self._counter += 1
        comment = _Comment(str(self._counter), author, body, self._tick(issue))
        issue.comments.append(comment)
        return comment

    def _link(self, link_type: tuple[str, str, str, str], inward: _Issue, outward: _Issue) -> str:
        self._counter += 1
        link = _Link(str(self._counter), link_type, inward, outward)
        inward.links.append(link)
        outward.links.append(link)
        self._tick(inward)
        self._tick(outward)
        return link.id

    def _approval(self, issue: _Issue, approval_id: str) -> _Approval:
        for approval in issue.approvals:
            if approval.id == str(approval_id):
                return approval
        raise _sd_error(404, f"The approval with ID {approval_id} does not exist.")

    def _answer(self, issue: _Issue, approval: _Approval, user: FakeUser | None,
                decision: str) -> None:
        if decision not in ("approve", "decline"):
            raise _sd_error(400, "The decision must be 'approve' or 'decline'.")
        if user is None or user.id not in {a.id for a in approval.approvers}:
            raise _sd_error(403, "You are not an approver of this approval.")
        if approval.final != "pending":
            raise _sd_error(400, "This approval has already been completed.")
        verdict = "approved" if decision == "approve" else "declined"
        approval.decisions[user.id] = verdict
        approval.final = verdict  # any one approver decides
        approval.completed = self._tick(issue)

    def _select(self, spec: Sequence[str] | None, default: str) -> list[str]:
        """Field ids for a `fields` parameter; [] means ids only."""
        tokens = [t.strip() for t in (spec if spec is not None else [default]) if t.strip()]
        chosen: dict[str, None] = {}
        for token in tokens:
            if token == "*all":
                chosen.update(dict.fromkeys(self._fields))
            elif token == "*navigable":
                chosen.update(dict.fromkeys(f.id for f in self._fields.values() if f.navigable))
            else:
                drop = token.startswith("-")
                name = token.lstrip("-")
                ids = [f.id for f in self._fields.values()
                       if f.id == name or f.name.lower() == name.lower()]
                for fid in ids:
                    if drop:
                        chosen.pop(fid, None)
                    else:
                        chosen[fid] = None
        return list(chosen)

    def _search(self, jql: str, *, bounded: bool) -> list[_Issue]:
        cached = self._search_cache
        if cached is not None and cached[0] == jql and cached[1] == self._version:
            return cached[2]
        query = _JqlParser(jql).parse()
        if bounded and not query.clauses:
            raise FakeJiraError(400, [_UNBOUNDED])
        checks = [self._predicate(c) for c in query.clauses]
        found = [i for i in self._issues.values() if all(check(i) for check in checks)]
        order = query.order or (("created", True), ("id", True))
        for name, descending in reversed(order):
            found.sort(key=_ORDER_KEYS[name], reverse=descending)
        self._search_cache = (jql, self._version, found)
        return found

    def _predicate(self, clause: _Clause) -> Callable[[_Issue], bool]:
        if clause.field in ("updated", "created"):
            ms = _jql_time(clause.values[0], clause.field)
            get_ms: Callable[[_Issue], int] = ((lambda i: i.updated) if clause.field == "updated"
                                               else (lambda i: i.created))
            return _comparer(clause.op, ms, get_ms)
        if clause.field == "project":
            wanted = {self._project_ref(v).key for v in clause.values}
            return _matcher(clause.op, wanted, lambda i: i.project.key)
        if clause.field == "status":
            names = set()
            for value in clause.values:
                known = self._statuses.get(value.lower()) or next(
                    (s for s in self._statuses.values() if s[0] == value), None)
                if known is None:
                    raise FakeJiraError(400, [f"The value '{value}' does not exist for the field "
                                              "'status'."])
                names.add(known[1].lower())
            return _matcher(clause.op, names, lambda i: i.status.lower())
        if clause.field == "issuetype":
            types = {v.lower() for v in clause.values}
            return _matcher(clause.op, types, lambda i: i.issue_type.lower())
        if clause.field == "labels":  # an issue matches when any of its labels does
            wanted = set(clause.values)
            has = (lambda i: bool(wanted & set(i.values.get("labels") or []))) \
                if clause.op in ("=", "in") else (
                    lambda i: not wanted & set(i.values.get("labels") or []))
            return has
        return _matcher(clause.op, {v.upper() for v in clause.values}, lambda i: i.key)

    def _project_ref(self, ref: str) -> _Project:
        for proj in self._projects.values():
            if ref.upper() == proj.key or ref == proj.id or ref.lower() == proj.name.lower():
                return proj
        raise FakeJiraError(400, [f"The value '{ref}' does not exist for the field 'project'."])


def _display(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return " ".join(filter(None, (_display(v) for v in value)))
    if isinstance(value, dict):
        return str(value.get("value") or value.get("name") or value.get("key") or value)
    return str(value)


# --- JSON shapes -------------------------------------------------------------------------


class _Views:
    """Renders the fake's state in Jira's JSON shapes (call with the fake's lock held)."""

    def __init__(self, fake: FakeJira) -> None:
        self.fake = fake
        self.cloud = fake.mode == "cloud"
        self.api = f"{fake.url}/rest/api/2"

    def user(self, user: FakeUser | None) -> dict[str, Any] | None:
        if user is None:
            return None
        if self.cloud:
            return {"self": f"{self.api}/user?accountId={user.id}", "accountId": user.id,
                    "accountType": "atlassian", "emailAddress": user.email, "avatarUrls": {},
                    "displayName": user.display_name, "active": True, "timeZone": "UTC",
                    "locale": "en_US"}
        return {"self": f"{self.api}/user?username={user.id}", "name": user.id, "key": user.key,
                "emailAddress": user.email, "avatarUrls": {}, "displayName": user.display_name,
                "active": True, "timeZone": "UTC", "locale": "en_US"}

    def sd_user(self, user: FakeUser) -> dict[str, Any]:
        user = self.fake._users.get(user.id, user)  # as the user is named now
        ident = {"accountId": user.id} if self.cloud else {"name": user.id, "key": user.key}
        return {**ident, "emailAddress": user.email, "displayName": user.display_name,
                "active": True, "timeZone": "UTC"}

    def status(self, name: str) -> dict[str, Any]:
        sid, sname, category = self.fake._status(name)
        cat_id, cat_name, colour = _CATEGORIES[category]
        return {"self": f"{self.api}/status/{sid}", "description": "", "iconUrl": "",
                "name": sname, "id": sid,
                "statusCategory": {"self": f"{self.api}/statuscategory/{cat_id}", "id": cat_id,
                                   "key": category, "colorName": colour, "name": cat_name}}

    def issue_type(self, name: str) -> dict[str, Any]:
        tid = self.fake._issue_types[name]
        return {"self": f"{self.api}/issuetype/{tid}", "id": tid, "description": "",
                "iconUrl": "", "name": name, "subtask": False, "hierarchyLevel": 0}

    def project(self, proj: _Project, *, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"self": f"{self.api}/project/{proj.id}", "id": proj.id,
                               "key": proj.key, "name": proj.name, "projectTypeKey": "software",
                               "simplified": False, "avatarUrls": {}}
        if full:
            out["description"] = ""
            out["issueTypes"] = [self.issue_type(t) for t in proj.issue_types]
        return out

    def field_value(self, issue: _Issue, fid: str) -> Any:
        match fid:
            case "status":
                return self.status(issue.status)
            case "issuetype":
                return self.issue_type(issue.issue_type)
            case "project":
                return self.project(issue.project)
            case "reporter":
                return self.user(issue.reporter)
            case "created" | "updated":
                return jira_time(issue.created if fid == "created" else issue.updated)
            case "labels" | "components":
                return issue.values.get(fid) or []
            case "priority":
                value = issue.values.get(fid)
                name = value.get("name") if isinstance(value, dict) else value
                return None if name is None else {
                    "self": f"{self.api}/priority/{name}", "name": name, "id": str(name)}
            case "issuelinks":
                return [self.link(issue, link) for link in issue.links]
            case "comment":
                return self.comments_page(issue, 0, len(issue.comments) or 1)
        return issue.values.get(fid)

    def issue(self, issue: _Issue, fields: list[str], expand: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"expand": "renderedFields,names,schema,editmeta,changelog",
                               "id": issue.id, "self": f"{self.api}/issue/{issue.id}",
                               "key": issue.key}
        if fields:
            out["fields"] = {fid: self.field_value(issue, fid) for fid in fields}
        if "changelog" in expand:
            shown = issue.histories[-100:] if self.cloud else issue.histories
            out["changelog"] = {"startAt": len(issue.histories) - len(shown),
                                "maxResults": len(shown), "total": len(issue.histories),
                                "histories": [self.history(h) for h in shown]}
        if "names" in expand:
            out["names"] = {fid: self.fake._fields[fid].name for fid in fields}
        return out

    def history(self, history: _History) -> dict[str, Any]:
        return {"id": history.id, "author": self.user(history.author),
                "created": jira_time(history.created), "items": history.items}

    def comment(self, issue: _Issue, comment: _Comment) -> dict[str, Any]:
        author = self.user(comment.author)
        out: dict[str, Any] = {
            "self": f"{self.api}/issue/{issue.id}/comment/{comment.id}", "id": comment.id,
            "author": author, "body": comment.body, "updateAuthor": author,
            "created": jira_time(comment.created), "updated": jira_time(comment.created)}
        if self.cloud:
            out["jsdPublic"] = True
        return out

    def comments_page(self, issue: _Issue, start: int, limit: int) -> dict[str, Any]:
        shown = issue.comments[start:start + limit]
        return {"self": f"{self.api}/issue/{issue.id}/comment", "startAt": start,
                "maxResults": limit, "total": len(issue.comments),
                "comments": [self.comment(issue, c) for c in shown]}

    def link_type(self, link_type: tuple[str, str, str, str]) -> dict[str, Any]:
        tid, name, inward, outward = link_type
        return {"id": tid, "name": name, "inward": inward, "outward": outward,
                "self": f"{self.api}/issueLinkType/{tid}"}

    def link(self, issue: _Issue, link: _Link) -> dict[str, Any]:
        other, side = ((link.outward, "outwardIssue") if link.inward is issue
                       else (link.inward, "inwardIssue"))
        ref = {"id": other.id, "key": other.key, "self": f"{self.api}/issue/{other.id}",
               "fields": {"summary": other.values.get("summary"),
                          "status": self.status(other.status),
                          "issuetype": self.issue_type(other.issue_type)}}
        return {"id": link.id, "self": f"{self.api}/issueLink/{link.id}",
                "type": self.link_type(link.type), side: ref}

    def remote_link(self, issue: _Issue, link: dict[str, Any]) -> dict[str, Any]:
        return {"id": link["id"], "self": f"{self.api}/issue/{issue.key}/remotelink/{link['id']}",
                **{k: v for k, v in link.items() if k != "id"}}

    def sd_date(self, ms: int) -> dict[str, Any]:
        dt = _EPOCH + timedelta(milliseconds=ms)
        return {"iso8601": f"{dt:%Y-%m-%dT%H:%M:%S}+0000", "jira": jira_time(ms),
                "friendly": f"{dt:%d/%b/%y %I:%M %p}", "epochMillis": ms}

    def approval(self, issue: _Issue, approval: _Approval,
                 caller: FakeUser | None) -> dict[str, Any]:
        approver_ids = {a.id for a in approval.approvers}
        out: dict[str, Any] = {
            "id": approval.id, "name": approval.name, "finalDecision": approval.final,
            "canAnswerApproval": (approval.final == "pending" and caller is not None
                                  and caller.id in approver_ids),
            "approvers": [{"approver": self.sd_user(a),
                           "approverDecision": approval.decisions.get(a.id, "pending")}
                          for a in approval.approvers],
            "createdDate": self.sd_date(approval.created),
            "_links": {"self": f"{self.fake.url}/rest/servicedeskapi/request/{issue.id}"
                               f"/approval/{approval.id}"}}
        if approval.completed is not None:
            out["completedDate"] = self.sd_date(approval.completed)
        return out


# --- HTTP --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    user: FakeUser | None

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return None if values is None else ",".join(values)

    def params(self) -> dict[str, Any]:
        """Search parameters: the JSON body of a POST, else the query string."""
        if self.method == "POST":
            return dict(self.body) if isinstance(self.body, dict) else {}
        return {k: ",".join(v) for k, v in self.query.items()}


def _int(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FakeJiraError(400, [f"The value '{value}' of '{name}' is not a number."]) from None


def _names(value: Any) -> list[str] | None:
    """A `fields`/`expand` parameter as a list: comma strings and JSON lists both work."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [part for item in items for part in str(item).split(",")]


_API = r"/rest/api/(?:2|latest)"
_KEY = r"(?P<key>[^/]+)"
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), handler) for method, pattern, handler in (
        ("GET", _API + r"/serverInfo", "server_info"),
        ("GET", _API + r"/myself", "myself"),
        ("GET", _API + r"/field", "fields"),
        ("GET", _API + r"/project/(?P<ref>[^/]+)", "project"),
        ("GET", _API + r"/issuetype", "issue_types"),
        ("GET", _API + r"/issueLinkType", "link_types"),
        ("POST", _API + r"/issueLink", "create_link"),
        ("POST", _API + r"/issue", "create_issue"),
        ("GET", _API + r"/issue/" + _KEY, "get_issue"),
        ("PUT", _API + r"/issue/" + _KEY, "edit_issue"),
        ("GET", _API + r"/issue/" + _KEY + r"/changelog", "changelog"),
        ("GET", _API + r"/issue/" + _KEY + r"/transitions", "transitions"),
        ("POST", _API + r"/issue/" + _KEY + r"/transitions", "do_transition"),
        ("GET", _API + r"/issue/" + _KEY + r"/comment", "comments"),
        ("POST", _API + r"/issue/" + _KEY + r"/comment", "add_comment"),
        ("GET", _API + r"/issue/" + _KEY + r"/remotelink", "remote_links"),
        ("POST", _API + r"/issue/" + _KEY + r"/remotelink", "add_remote_link"),
        ("GET", _API + r"/search", "search"),
        ("POST", _API + r"/search", "search"),
        ("GET", _API + r"/search/jql", "search_jql"),
        ("POST", _API + r"/search/jql", "search_jql"),
        ("GET", r"/rest/servicedeskapi/request/" + _KEY + r"/approval", "approvals"),
        ("GET", r"/rest/servicedeskapi/request/" + _KEY + r"/approval/(?P<aid>[^/]+)", "approval"),
        ("POST", r"/rest/servicedeskapi/request/" + _KEY + r"/approval/(?P<aid>[^/]+)", "answer"),
    ))
_Reply = tuple[int, Any]


class _Api:
    """Turns HTTP requests into operations on the fake and answers in Jira's shapes."""

    def __init__(self, fake: FakeJira) -> None:
        self.fake = fake

    def handle(self, method: str, target: str, raw: bytes,
               authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        """Authenticate, inject faults, dispatch, record; returns (status, headers, body)."""
        fake = self.fake
        split = urlsplit(target)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        user = fake._authenticate(authorization)
        try:
            body = json.loads(raw) if raw.strip() else None
            bad_body = None
        except ValueError as exc:
            body, bad_body = None, FakeJiraError(400, [f"Unexpected character in JSON: {exc}"])
        fault = fake._take_fault(method, path)
        headers: dict[str, str] = {}
        if fault is not None and fault.kind == "stall":
            fake._closing.wait(fault.seconds)
        if fault is not None and fault.kind == "fail":
            status, out, headers = fault.status, json.dumps(fault.body).encode(), fault.headers
        elif fault is not None and fault.kind == "malformed":
            status, out = 200, b'{"issues": [{"id": "10001", "key": '
        else:
            try:
                status, payload = self._dispatch(method, path, query, body, user, bad_body)
            except Exception as exc:  # a bug in the fake: answer it rather than drop the socket
                status, payload = 500, {"errorMessages": [f"Fake Jira failed: {exc!r}"]}
            out = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
            if status == 401:
                headers = {"WWW-Authenticate": 'Basic realm="protected-area"'
                           if fake.mode == "cloud" else 'Bearer realm="fake-jira"',
                           "X-Seraph-LoginReason": "AUTHENTICATED_FAILED"}
        fake._record(RecordedRequest(method, path, {k: ",".join(v) for k, v in query.items()},
                                     user.id if user else None, status, body,
                                     fault.kind if fault else None))
        return status, headers, out

    def _dispatch(self, method: str, path: str, query: dict[str, list[str]], body: Any,
                  user: FakeUser | None, bad_body: FakeJiraError | None) -> _Reply:
        allowed = False
        for route_method, pattern, name in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            allowed = True
            if route_method != method:
                continue
            if user is None and name != "server_info":
                return 401, {"errorMessages": [_NOT_AUTHENTICATED], "errors": {}}
            try:
                if bad_body is not None:
                    raise bad_body
                endpoint: Callable[..., _Reply] = getattr(self, name)
                with self.fake._lock:
                    return endpoint(_Views(self.fake), _Call(method, path, query, body, user),
                                    **match.groupdict())
            except FakeJiraError as exc:
                return exc.status, exc.payload
        if allowed:
            return 405, {"errorMessages": [f"Method {method} not allowed here."], "errors": {}}
        return 404, {"errorMessages": [f"null for uri: {self.fake.url}{path}"], "errors": {}}

    # --- server, users, metadata -------------------------------------------------------------

    def server_info(self, views: _Views, call: _Call) -> _Reply:
        cloud = self.fake.mode == "cloud"
        version = "1001.0.0-SNAPSHOT" if cloud else "9.12.0"
        return 200, {"baseUrl": self.fake.url, "displayUrl": self.fake.url, "version": version,
                     "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 0],
                     "deploymentType": "Cloud" if cloud else "Server",
                     "buildNumber": 100290 if cloud else 9120000,
                     "buildDate": "2026-11-01T00:00:00.000+0000",
                     "serverTime": jira_time(time.time_ns() // 1_000_000),
                     "scmInfo": "fake", "serverTitle": "Fake Jira"}

    def myself(self, views: _Views, call: _Call) -> _Reply:
        return 200, views.user(call.user)

    def fields(self, views: _Views, call: _Call) -> _Reply:
        return 200, [f.json() for f in self.fake._fields.values()]

    def project(self, views: _Views, call: _Call, ref: str) -> _Reply:
        for proj in self.fake._projects.values():
            if ref in (proj.key, proj.id):
                return 200, views.project(proj, full=True)
        raise FakeJiraError(404, [f"No project could be found with key '{ref}'."])

    def issue_types(self, views: _Views, call: _Call) -> _Reply:
        return 200, [views.issue_type(name) for name in self.fake._issue_types]


    # --- issues ------------------------------------------------------------------------------

    def create_issue(self, views: _Views, call: _Call) -> _Reply:
        fields = dict((call.body or {}).get("fields") or {})
        proj_ref, type_ref = fields.pop("project", None), fields.pop("issuetype", None)
        proj_ref = proj_ref if isinstance(proj_ref, dict) else {}
        type_ref = type_ref if isinstance(type_ref, dict) else {}
        errors: dict[str, str] = {}
        proj = next((p for p in self.fake._projects.values()
                     if proj_ref.get("key") == p.key or str(proj_ref.get("id")) == p.id), None)
        if proj is None:
            errors["project"] = "Specify a valid project ID or key"
        type_name = next((n for n, tid in self.fake._issue_types.items()
                          if type_ref.get("name") == n or str(type_ref.get("id")) == tid), None)
        if type_name is None:
            errors["issuetype"] = "Specify a valid issue type"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        if errors:
            raise FakeJiraError(400, [], errors)
        assert proj is not None and type_name is not None
        issue = self.fake._create(proj, type_name, fields, call.user)
        return 201, {"id": issue.id, "key": issue.key, "self": f"{views.api}/issue/{issue.id}"}

    def get_issue(self, views: _Views, call: _Call, key: str) -> _Reply:
        issue = self.fake._issue(key)
        return 200, views.issue(issue, self.fake._select(_names(call.arg("fields")), "*all"),
                                set(_names(call.arg("expand")) or []))

    def edit_issue(self, views: _Views, call: _Call, key: str) -> _Reply:
        issue = self.fake._issue(key)
        body = call.body or {}
        update = body.get("update") or {}
        unsupported = set(update) - {"comment"}
        if unsupported:
            raise FakeJiraError(400, [], {f: "The fake supports only 'update.comment'."
                                          for f in unsupported})
        self.fake._edit(issue, body.get("fields") or {}, call.user)
        for op in update.get("comment", []):
            self.fake._comment(issue, (op.get("add") or {}).get("body"), call.user)
        return 204, None

    def changelog(self, views: _Views, call: _Call, key: str) -> _Reply:
        issue = self.fake._issue(key)
        start = _int(call.arg("startAt"), "startAt", 0)
        limit = min(_int(call.arg("maxResults"), "maxResults", 100) or 100, 100)
        shown = issue.histories[start:start + limit]
        last = start + len(shown) >= len(issue.histories)
        page = f"{views.api}/issue/{issue.key}/changelog?maxResults={limit}&startAt="
        out = {"self": f"{page}{start}", "maxResults": limit, "startAt": start,
               "total": len(issue.histories), "isLast": last,
               "values": [views.history(h) for h in shown]}
        if not last:
            out["nextPage"] = f"{page}{start + limit}"
        return 200, out

    def transitions(self, views: _Views, call: _Call, key: str) -> _Reply:
        issue = self.fake._issue(key)
        wanted = call.arg("transitionId")
        return 200, {"expand": "transitions", "transitions": [
            {"id": t.id, "name": t.name, "to": views.status(t.target), "hasScreen": False,
             "isGlobal": t.source is None, "isInitial": False, "isAvailable": True,
             "isConditional": t.allowed is not None, "isLooped": False}
            for t in self.fake._open_transitions(issue, call.user)
            if wanted is None or t.id == wanted]}

    def do_transition(self, views: _Views, call: _Call, key: str) -> _Reply:
        issue = self.fake._issue(key)
        body = call.body or {}
        wanted = (body.get("transition") or {}).get("id")
        if wanted is None:
            raise FakeJiraError(400, ["Missing 'transition' identifier"])
        for t in self.fake._open_transitions(issue, call.user):
            if t.id == str(wanted):
                comments = [(op.get("add") or {}).get("body")
                            for op in (body.get("update") or {}).get("comment", [])]
                self.fake._transition(issue, t, call.user, body.get("fields") or {}, comments)
                return 204, None
        raise FakeJiraError(400, [f"Transition id '{wanted}' is not valid for this issue."])

    def comments(self, views: _Views, call: _Call, key: str) -> _Reply:
        issue = self.fake._issue(key)
        return 200, views.comments_page(issue, _int(call.arg("startAt"), "startAt", 0),
                                        _int(call.arg("maxResults"), "maxResults", 5000))

    def add_comment(self, views: _Views, call: _Call, key: str) -> _Reply:
        issue = self.fake._issue(key)
        comment = self.fake._comment(issue, (call.body or {}).get("body"), call.user)
        return 201, views.comment(issue, comment)

    # --- links -------------------------------------------------------------------------------

    def link_types(self, views: _Views, call: _Call) -> _Reply:
        return 200, {"issueLinkTypes": [views.link_type(t) for t in _LINK_TYPES]}

    def create_link(self, views: _Views, call: _Call) -> _Reply:
        body = call.body or {}
        name = (body.get("type") or {}).get("name")
        inward = self.fake._issue(str((body.get("inwardIssue") or {}).get("key")))
        outward = self.fake._issue(str((body.get("outwardIssue") or {}).get("key")))
        self.fake.link_issues(str(name), inward.key, outward.key)
        comment = body.get("comment")
        if isinstance(comment, dict) and comment.get("body"):
            self.fake._comment(outward, comment["body"], call.user)
        return 201, None

    def remote_links(self, views: _Views, call: _Call, key: str) -> _Reply:
        issue = self.fake._issue(key)
        global_id = call.arg("globalId")
        if global_id is not None:
            for link in issue.remote_links:
                if link.get("globalId") == global_id:
                    return 200, views.remote_link(issue, link)
            raise FakeJiraError(404, [f"No remote link with globalId '{global_id}'."])
        return 200, [views.remote_link(issue, link) for link in issue.remote_links]

    def add_remote_link(self, views: _Views, call: _Call, key: str) -> _Reply:
        issue = self.fake._issue(key)
        body = dict(call.body or {})
        obj = body.get("object") or {}
        if not obj.get("url") or not obj.get("title"):
            raise FakeJiraError(400, [], {"object": "'url' and 'title' are required."})
        existing = next((link for link in issue.remote_links if body.get("globalId")
                         and link.get("globalId") == body["globalId"]), None)
        self.fake._tick(issue)
        if existing is not None:
            existing.update(body)
            return 200, {"id": existing["id"], "self": views.remote_link(issue, existing)["self"]}
        self.fake._counter += 1
        link = {"id": self.fake._counter, **body}
        issue.remote_links.append(link)
        return 201, {"id": link["id"], "self": views.remote_link(issue, link)["self"]}

    # --- search ------------------------------------------------------------------------------

    def search(self, views: _Views, call: _Call) -> _Reply:
        if self.fake.mode == "cloud":
            raise FakeJiraError(410, [_SEARCH_REMOVED])
        params = call.params()
        found = self.fake._search(str(params.get("jql") or ""), bounded=False)
        start = max(_int(params.get("startAt"), "startAt", 0), 0)
        limit = min(max(_int(params.get("maxResults"), "maxResults", 50), 0), 1000)
        fields = self.fake._select(_names(params.get("fields")), "*navigable")
        expand = set(_names(params.get("expand")) or [])
        return 200, {"expand": "schema,names", "startAt": start, "maxResults": limit,
                     "total": len(found),
                     "issues": [views.issue(i, fields, expand) for i in found[start:start + limit]]}

    def search_jql(self, views: _Views, call: _Call) -> _Reply:
        if self.fake.mode != "cloud":
            raise FakeJiraError(404, [f"null for uri: {self.fake.url}{call.path}"])
        params = call.params()
        jql = str(params.get("jql") or "")
        found = self.fake._search(jql, bounded=True)
        fields = self.fake._select(_names(params.get("fields")), "id")
        limit = _int(params.get("maxResults"), "maxResults", 50) or 50
        limit = min(limit, 5000 if not fields else 100)
        start = self._token_offset(params.get("nextPageToken"), jql)
        expand = set(_names(params.get("expand")) or [])
        out: dict[str, Any] = {
            "issues": [views.issue(i, fields, expand) for i in found[start:start + limit]],
            "isLast": start + limit >= len(found)}
        if not out["isLast"]:
            out["nextPageToken"] = self._token(start + limit, jql)
        return 200, out

    @staticmethod
    def _token(offset: int, jql: str) -> str:
        digest = hashlib.sha256(jql.encode()).hexdigest()[:12]
        return base64.urlsafe_b64encode(f"{offset}:{digest}".encode()).decode()

    def _token_offset(self, token: Any, jql: str) -> int:
        if not token:
            return 0
        try:
            offset = int(base64.urlsafe_b64decode(str(token)).decode().split(":")[0])
        except (ValueError, UnicodeDecodeError, binascii.Error):
            offset = -1
        if offset < 0 or self._token(offset, jql) != token:
            raise FakeJiraError(400, ["The provided next page token is invalid or expired."])
        return offset

    # --- JSM approvals -----------------------------------------------------------------------

    def approvals(self, views: _Views, call: _Call, key: str) -> _Reply:
        issue = self._request(key)
        start = _int(call.arg("start"), "start", 0)
        limit = _int(call.arg("limit"), "limit", 50)
        shown = issue.approvals[start:start + limit]
        return 200, {"size": len(shown), "start": start, "limit": limit,
                     "isLastPage": start + len(shown) >= len(issue.approvals),
                     "values": [views.approval(issue, a, call.user) for a in shown],
                     "_links": {"base": self.fake.url, "context": ""}}

    def approval(self, views: _Views, call: _Call, key: str, aid: str) -> _Reply:
        issue = self._request(key)
        return 200, views.approval(issue, self.fake._approval(issue, aid), call.user)

    def answer(self, views: _Views, call: _Call, key: str, aid: str) -> _Reply:
        issue = self._request(key)
        approval = self.fake._approval(issue, aid)
        self.fake._answer(issue, approval, call.user, str((call.body or {}).get("decision")))
        return 200, views.approval(issue, approval, call.user)

    def _request(self, key: str) -> _Issue:
        try:
            return self.fake._issue(key)
        except FakeJiraError:
            raise _sd_error(404, f"The request {key} does not exist.") from None


class _Server(ThreadingHTTPServer):
    """Joins its handler threads on close (stalled ones wake when the fake closes)."""

    daemon_threads = False
    block_on_close = True
    api: _Api

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up early (after a stall) is not an error worth printing."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Transport only: reads the request, asks `_Api`, writes the answer (HTTP/1.0)."""

    server: _Server
    timeout = 10

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, body = self.server.api.handle(
            self.command, self.path, raw, self.headers.get("Authorization"))
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if status != 204:
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 204:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a stall beyond its timeout)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: request lines would be noise (and headers are never logged)."""
