"""Change tickets in Jira (Cloud or Data Center) through the `jira` library.

The adapter speaks domain models only: a Jira issue becomes a `Ticket` whose fields
carry changeflow's names (`config/jira.yaml` says which Jira field holds which), people
are mapped to the roster by `jira_account`, and every failure becomes one of two
errors: `TicketSystemUnavailable` (429, 5xx, connection errors, timeouts, a garbled
answer: worth retrying, with Jira's `Retry-After` when it gave one) or
`TicketSystemError` (anything else, with Jira's own message). The client's own retries
are off; the tasks that call this adapter are the one retry layer.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests
from jira import JIRA, JIRAError
from pydantic import SecretStr

from config.jira import JiraIncidents, JiraMapping
from domain.models import IncidentFacts, Roster, Ticket, TicketApproval
from integrations.ports import TicketNotFound, TicketSystemError, TicketSystemUnavailable

QUIET_LOGGERS = ("jira", "jira.resilientsession")
"""At DEBUG the `jira` library logs request headers and bodies (credentials included):
these loggers are held at INFO or above whatever the root level is."""

PAGE_SIZE = 100
"""Issues per search page (Cloud's maximum; Data Center allows more)."""

MAX_RETRY_AFTER = 300.0
"""A longer `Retry-After` is capped: the task's own retry budget decides beyond that."""

T = TypeVar("T")


ISSUE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,254}-[1-9][0-9]{0,17}\Z")
"""A Jira issue key: the project key (a letter, then letters, digits or `_`), a dash, a
number. Nothing else may reach a request path (`../`, `?`, `#`, `/` or spaces)."""


def issue_key(key: str) -> str:
    """`key` if it is a Jira issue key.

    Raises:
        TicketNotFound: it is not one; no request is made.
    """
    if not isinstance(key, str) or not ISSUE_KEY.match(key):
        raise TicketNotFound(f"{str(key)[:80]!r} is not a Jira issue key (write it like "
                             "CHG-123: the project key, a dash, the issue number)")
    return key


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds to wait: delta-seconds or an HTTP-date; None if absent/bad."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


def jira_message(exc: JIRAError) -> str:
    """Jira's own words from an error answer: `errorMessages` and `field: message`."""
    try:
        body = exc.response.json() if exc.response is not None else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    parts = [str(m) for m in body.get("errorMessages") or []]
    parts += [f"{field}: {msg}" for field, msg in (body.get("errors") or {}).items()]
    return "; ".join(parts) or (exc.text or "no message")


class JiraChangeTickets:
    """`ChangeTickets` on a Jira project; checks credentials and field names at start."""

    def __init__(self, url: str, mapping: JiraMapping, roster: Roster, token: SecretStr,
                 email: str | None = None, timeout_seconds: float = 10.0) -> None:
        """Connect, check the credentials with `myself()`, and resolve the field names.

        Args:
            url: the Jira base URL.
            mapping: `config/jira.yaml`.
            roster: who people are (matched on `jira_account`).
            token: Cloud API token (with `email`) or Data Center personal access token.
            email: the Cloud account's e-mail; None for Data Center.
            timeout_seconds: the timeout of every request.

        Raises:
            TicketSystemError: bad credentials, or a mapped field missing or ambiguous.
            TicketSystemUnavailable: Jira cannot be reached.
        """
        for name in QUIET_LOGGERS:
            logger = logging.getLogger(name)
            logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
        self.mapping = mapping
        self.roster = roster
        self.url = url.rstrip("/")
        self.requests = 0
        """HTTP requests made, counted on the session (for tests and benchmarks)."""
        secret = token.get_secret_value()
        auth: dict[str, Any] = ({"basic_auth": (email, secret)} if email
                                else {"token_auth": secret})
        self.client: JIRA = self._call("connecting", lambda: JIRA(
            server=self.url, max_retries=0, timeout=timeout_seconds, **auth))
        self.requests = 1  # serverInfo, asked by the constructor
        self.client._session.hooks["response"].append(self._count)
        self.cloud = self.client.deploymentType == "Cloud"
        me = self._call("checking the credentials (myself)", self.client.myself)
        self.account = str(me.get("accountId") or me.get("name"))
        self.field_ids = self._resolve_fields()
        self._by_account = {p.jira_account: p.id for p in roster.people.values()
                            if p.jira_account}

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.requests += 1

    # -- errors ---------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except JIRAError as exc:
            status = exc.status_code or 0
            if status == 429 or status >= 500:
                headers = exc.response.headers if exc.response is not None else {}
                raise TicketSystemUnavailable(
                    f"Jira answered {status} while {what}",
                    retry_after_seconds(headers.get("Retry-After"), datetime.now(UTC))
                ) from None
            if status in (401, 403):
                raise TicketSystemError(
                    f"Jira refused the credentials ({status}) while {what}: check "
                    "CHANGEFLOW_JIRA_EMAIL and the token (CHANGEFLOW_JIRA_TOKEN or its "
                    "block)") from None
            if status == 404:
                raise TicketNotFound(f"Jira has no such item while {what}: "
                                     f"{jira_message(exc)}") from None
            raise TicketSystemError(f"Jira refused {what} ({status}): "
                                    f"{jira_message(exc)}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TicketSystemUnavailable(f"Jira did not answer while {what}: "
                                          f"{type(exc).__name__}", None) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise TicketSystemUnavailable(f"Jira's answer was malformed while {what}: "
                                          f"{type(exc).__name__}", None) from None

    # -- fields ---------------------------------------------------------------------------

    def _resolve_fields(self) -> dict[str, str]:
        """Map changeflow's fields to Jira field ids, from the configured names."""
        listed = self._call("listing fields", self.client.fields)
        by_name: dict[str, list[str]] = {}
        clauses: dict[str, str] = {}
        for field in listed:
            by_name.setdefault(str(field["name"]), []).append(str(field["id"]))
            clauses.update({str(c): str(field["id"]) for c in field.get("clauseNames") or []})
        # The library keeps its own copy, filled on its first search: give it this one.
        self.client._fields_cache_value = clauses
        resolved: dict[str, str] = {}
        problems: list[str] = []
        for ours, name in self.mapping.fields.model_dump().items():
            if name is None:
                continue
            ids = by_name.get(name, [])
            if len(ids) == 1:
                resolved[ours] = ids[0]
            elif not ids:
                problems.append(f"fields.{ours}: Jira has no field named {name!r}")
            else:
                problems.append(f"fields.{ours}: {len(ids)} Jira fields are named {name!r} "
                                f"({', '.join(ids)}); rename one in Jira")
        if problems:
            raise TicketSystemError("jira.yaml does not match this Jira:\n- "
                                    + "\n- ".join(problems))
        return resolved

    def jira_fields(self) -> list[str]:
        """The Jira field ids a ticket is read from."""
        return ["summary", "description", "status", "updated", "reporter", "labels",
                "components", *self.field_ids.values()]

    # -- reading --------------------------------------------------------------------------

    def web_url(self, key: str) -> str:
        """The issue's page in Jira (`<url>/browse/<key>`)."""
        return f"{self.url}/browse/{issue_key(key)}"

    def get(self, key: str) -> Ticket:
        """The ticket with this key; raises `TicketNotFound`."""
        key = issue_key(key)
        raw = self._call(f"reading {key}", lambda: self.client.issue(
            key, fields=",".join(self.jira_fields())).raw)
        return self.to_ticket(raw)

    def search(self, status: str | None = None) -> list[Ticket]:
        """The project's tickets, only those in `status` when given, in key order."""
        jql = f'project = "{self.mapping.project}"'
        if status is not None:
            jql += f' AND status = "{status}"'
        found = [t for page in self.pages(jql + " ORDER BY key ASC") for t in page]
        return sorted(found, key=lambda t: (t.key.split("-")[0], int(t.key.split("-")[-1])))

    def pages(self, jql: str) -> Iterator[list[Ticket]]:
        """Every page of a search, in order."""
        cursor: str | None = ""
        while cursor is not None:
            tickets, cursor, _ = self.search_page(jql, cursor)
            yield tickets

    def search_page(self, jql: str, cursor: str = "") -> tuple[list[Ticket], str | None,
                                                                int | None]:
        """One page of a search: its tickets, the cursor of the next page, the total.

        The cursor is Cloud's `nextPageToken` or Data Center's `startAt` as text; "" is
        the first page and None means there is no next one. The total is known only on
        Data Center.
        """
        fields = self.jira_fields()
        if self.cloud:
            body = self._call("searching", lambda: self.client.enhanced_search_issues(
                jql, nextPageToken=cursor or None, maxResults=PAGE_SIZE, fields=fields,
                json_result=True))
            issues = body.get("issues") or []
            token = body.get("nextPageToken")
            return [self.to_ticket(raw) for raw in issues], (str(token) if token else None), None
        start = int(cursor or 0)
        body = self._call("searching", lambda: self.client.search_issues(
            jql, startAt=start, maxResults=PAGE_SIZE, fields=fields, json_result=True))
        issues = body.get("issues") or []
        total = int(body.get("total", 0))
        after = start + len(issues)
        return ([self.to_ticket(raw) for raw in issues],
                str(after) if issues and after < total else None, total)

    def updated_since_jql(self, since_ms: int) -> str:
        """The sync's search: the project's tickets updated at or after `since_ms`."""
        return (f'project = "{self.mapping.project}" AND updated >= {since_ms} '
                "ORDER BY updated ASC, key ASC")

    def _changelog(self, key: str) -> list[dict[str, Any]]:
        """Every changelog history of the issue, oldest first (paged, not truncated)."""
        histories: list[dict[str, Any]] = []
        while True:
            body = self.raw(f"issue/{key}/changelog?startAt={len(histories)}&maxResults=100")
            values = body.get("values") or []
            histories += values
            if not values or body.get("isLast", True) or len(histories) >= int(
                    body.get("total", 0)):
                return histories

    def _status_moves(self, key: str) -> Iterator[tuple[dict[str, Any], str]]:
        for history in self._changelog(key):
            for item in history.get("items") or []:
                if item.get("field") == "status":
                    yield history, str(item.get("toString"))

    def ready_revision(self, key: str, status: str) -> str:
        """Which readiness this is: the changelog history that moved the ticket to `status`.

        A ticket created in that status has revision "created".
        """
        key = issue_key(key)
        moves = [str(h.get("id")) for h, to in self._status_moves(key) if to == status]
        return moves[-1] if moves else "created"

    def approvals(self, key: str) -> list[TicketApproval]:
        """Decided approvals from Jira's own record, per `jira.yaml`'s `approvals.mode`."""
        key = issue_key(key)
        mode = self.mapping.approvals.mode
        roles = {name: role for role, name in self.mapping.approvals.names.items()}
        if mode == "transition":
            return [TicketApproval(ref=f"history:{h.get('id')}", role=roles[to],
                                   person_id=self.person(h.get("author")), decision="approve",
                                   at=_jira_time(h.get("created")) or datetime.now(UTC),
                                   source="jira-transition",
                                   account=_account(h.get("author")) or None)
                    for h, to in self._status_moves(key) if to in roles]
        if mode != "jsm":
            return []
        found: list[TicketApproval] = []
        start = 0
        while True:
            body = self.raw(f"request/{key}/approval?start={start}&limit=50",
                            base="servicedeskapi")
            values = body.get("values") or []
            for approval in values:
                found += self._jsm(approval, roles)
            start += len(values)
            if not values or body.get("isLastPage", True):
                return found

    def _jsm(self, approval: dict[str, Any], roles: dict[str, str]) -> list[TicketApproval]:
        role = roles.get(str(approval.get("name")))
        if role is None or approval.get("finalDecision") == "pending":
            return []
        done = approval.get("completedDate") or {}
        at = (datetime.fromtimestamp(int(done["epochMillis"]) / 1000, UTC)
              if "epochMillis" in done else datetime.now(UTC))
        return [TicketApproval(ref=f"jsm:{approval.get('id')}:{_account(entry.get('approver'))}",
                               role=role, person_id=self.person(entry.get("approver")),
                               decision="approve" if entry.get("approverDecision") == "approved"
                               else "decline", at=at, source="jira-jsm",
                               account=_account(entry.get("approver")) or None)
                for entry in approval.get("approvers") or []
                if entry.get("approverDecision") in ("approved", "declined")]

    def to_ticket(self, raw: dict[str, Any]) -> Ticket:
        """A Jira issue's JSON as a `Ticket` with changeflow's field names.

        Raises:
            TicketSystemUnavailable: Jira's own fields are not the shape Jira gives them
                (a garbled answer), named with the issue's key.
        """
        try:
            return self._to_ticket(raw)
        except (AttributeError, TypeError, KeyError) as exc:
            key = raw.get("key") if isinstance(raw, dict) else None
            raise TicketSystemUnavailable(
                f"Jira answered a malformed issue {key or '(no key)'}: "
                f"{type(exc).__name__}: {str(exc)[:200]}") from None

    def _to_ticket(self, raw: dict[str, Any]) -> Ticket:
        jf = raw.get("fields") or {}
        ids = self.field_ids

        def value(ours: str) -> Any:
            return jf.get(ids[ours]) if ours in ids else None

        fields: dict[str, Any] = {"summary": jf.get("summary"),
                                  "description": jf.get("description")}
        for ours in ("service", "version", "scope", "risk_assessment", "testing_plan",
                     "standard_procedure", "change_kind", "emergency_trigger",
                     "incident_ref"):
            fields[ours] = _text(value(ours))
        category = _text(value("category"))
        fields["category"] = category.lower() if isinstance(category, str) else category
        fields["author"] = self.person(jf.get("reporter"))
        fields["labels"] = [str(x) for x in jf.get("labels") or []]
        fields["components"] = [str(c.get("name")) for c in jf.get("components") or []
                                if isinstance(c, dict)]
        fields["changed_paths"] = _lines(value("changed_paths"))
        plan = {"trigger": _text(value("rollback_trigger")),
                "steps": _text(value("rollback_steps")),
                "owner": self.person(value("rollback_owner")),
                "verification": _text(value("rollback_verification")),
                "time_estimate_minutes": _number(value("rollback_time_estimate_minutes"))}
        if any(v is not None for v in plan.values()):
            fields["rollback_plan"] = {k: v for k, v in plan.items() if v is not None}
        evidence = self._evidence(value)
        if evidence:
            fields["evidence"] = evidence
        status = (jf.get("status") or {}).get("name", "")
        updated = _jira_time(jf.get("updated"))
        return Ticket(key=str(raw["key"]), status=str(status),
                      fields={k: v for k, v in fields.items() if v not in (None, [], "")},
                      updated=updated)

    def _evidence(self, value: Callable[[str], Any]) -> dict[str, Any]:
        reviewers = value("code_reviewers")
        parts = {
            "code_review": {"reviewers": [self.person(r) for r in reviewers or []]
                            if isinstance(reviewers, list) else None,
                            "url": _text(value("code_review_url"))},
            "ci": {"status": _text(value("ci_status")),
                   "failed_tests": _number(value("ci_failed_tests")),
                   "url": _text(value("ci_url"))},
            "sast": {"critical": _number(value("sast_critical")),
                     "high": _number(value("sast_high")), "url": _text(value("sast_url"))},
        }
        return {name: {k: v for k, v in part.items() if v is not None}
                for name, part in parts.items() if any(v is not None for v in part.values())}

    def person(self, user: Any) -> str | None:
        """A Jira user (or a roster id typed as text) as a roster id; unknown: `jira:<id>`."""
        if user is None or isinstance(user, str):
            return user
        if not isinstance(user, dict):
            return None
        account = _account(user)
        return self._by_account.get(account, f"jira:{account}" if account else None)

    # -- writing --------------------------------------------------------------------------

    def add_comment(self, key: str, body: str) -> None:
        """Add a comment to the ticket."""
        key = issue_key(key)
        self._call(f"commenting on {key}", lambda: self.client.add_comment(key, body))

    def comments(self, key: str) -> list[str]:
        """The ticket's comments, oldest first."""
        key = issue_key(key)
        found = self._call(f"reading comments of {key}", lambda: self.client.comments(key))
        return [str(c.body) for c in found]

    def transition(self, key: str, status: str) -> None:
        """Move the ticket to the Jira status configured for changeflow's `status`.

        Nothing happens when the ticket is already there. A status with no configured
        target, or no transition open to it, is an error naming what is available.
        """
        key = issue_key(key)
        target = self.mapping.transitions.target(status) or status
        current = self.get(key).status
        if current == target:
            return
        available = self._call(f"listing transitions of {key}",
                               lambda: self.client.transitions(key))
        match = next((t for t in available if (t.get("to") or {}).get("name") == target
                      or t.get("name") == target), None)
        if match is None:
            names = ", ".join(f"{t.get('name')} -> {(t.get('to') or {}).get('name')}"
                              for t in available) or "none"
            raise TicketSystemError(f"{key} cannot move from {current!r} to {target!r} "
                                    f"(transitions open to changeflow: {names})")
        self._call(f"moving {key} to {target}",
                   lambda: self.client.transition_issue(key, str(match["id"])))

    def add_link(self, key: str, url: str, title: str) -> None:
        """Attach an evidence link (CI run, pull request, flow run), once per URL."""
        key = issue_key(key)
        existing = self._call(f"reading links of {key}", lambda: self.client.remote_links(key))
        if any(getattr(link.object, "url", None) == url for link in existing):
            return
        self._call(f"linking {url} to {key}", lambda: self.client.add_simple_link(
            key, {"url": url, "title": title}))

    def incident(self, ref: str) -> IncidentFacts | None:
        """The incident `ref` in the incidents project: priority, open or not, summary.

        Raises:
            TicketNotFound: no such issue, or it is not an incident of the incidents
                project (`incidents.project`, `incidents.issue_type` in jira.yaml).
            TicketSystemUnavailable: Jira's answer is not the shape Jira gives an issue
                (a project, a type and a status with its category), named with the key.
        """
        ref = issue_key(ref)
        raw = self._call(f"reading incident {ref}", lambda: self.client.issue(
            ref, fields="summary,status,priority,project,issuetype").raw)
        try:
            return incident_facts(ref, raw, self.mapping.incidents)
        except (AttributeError, TypeError, KeyError) as exc:
            raise TicketSystemUnavailable(
                f"Jira answered a malformed incident {ref}: {type(exc).__name__}: "
                f"{str(exc)[:200]}") from None

    def open_incident(self, change_key: str, incident_id: str, summary: str,
                      priority: int) -> str:
        """The Jira incident for `incident_id`, linked to the change; created only once.

        Creation is looked up first (by the label carrying `incident_id`), because a
        create whose answer was lost may have happened.
        """
        change_key = issue_key(change_key)
        label = f"changeflow-{incident_id}"
        spec = self.mapping.incidents
        jql = f'project = "{spec.project}" AND labels = "{label}"'
        found = [t for page in self.pages(jql) for t in page]
        if found:
            return found[0].key
        created = self._call(f"creating incident {incident_id}", lambda: self.client.create_issue(
            fields={"project": {"key": spec.project}, "issuetype": {"name": spec.issue_type},
                    "summary": f"P{priority} {summary}", "labels": [label],
                    "description": f"Opened by changeflow for change {change_key}."}))
        self._call(f"linking {created.key} to {change_key}", lambda: self.client.create_issue_link(
            spec.link_type, created.key, change_key))
        return str(created.key)

    def raw(self, path: str, base: str = "api/2") -> Any:
        """GET a REST path (e.g. JSM approvals) through the client's session, as JSON."""
        return self._call(f"reading {path}", lambda: self.client._get_json(
            path, base=f"{{server}}/rest/{base}/{{path}}"))


STATUS_CATEGORIES = frozenset({"new", "indeterminate", "done"})
"""Jira's status categories; an incident is open unless its status is `done`."""


def incident_facts(ref: str, raw: dict[str, Any], spec: JiraIncidents) -> IncidentFacts:
    """What an incident issue's JSON says.

    Its priority (by `spec.priorities`), whether it is open, its summary.

    Raises:
        TicketNotFound: it is not an incident of `spec`'s project and issue type.
        KeyError, TypeError, AttributeError: the answer lacks a project, a type or a
            status category Jira knows (a garbled answer: nothing is assumed open).
    """
    fields = raw["fields"]
    project, kind = fields["project"]["key"], fields["issuetype"]["name"]
    if project != spec.project or kind != spec.issue_type:
        raise TicketNotFound(f"{ref} is a {kind or 'issue'} of project {project}, not an "
                             f"{spec.issue_type} of {spec.project} (jira.yaml incidents)")
    category = fields["status"]["statusCategory"]["key"]
    if category not in STATUS_CATEGORIES:
        raise KeyError(f"status category {str(category)[:40]!r}")
    priority = fields.get("priority")
    name = None if priority is None else priority["name"]
    return IncidentFacts(key=ref, source="ticket_system",
                         priority=None if name is None else spec.priorities.get(str(name)),
                         open=category != "done", summary=str(fields.get("summary") or ""))


def _account(user: Any) -> str:
    """A Jira user's stable id.

    The accountId (Cloud) or the username or key (Data Center); never the display name
    or e-mail, which people change.
    """
    if not isinstance(user, dict):
        return ""
    return str(user.get("accountId") or user.get("name") or user.get("key") or "")


def _text(value: Any) -> Any:
    """A select option or user as its text; numbers and text as they are."""
    if isinstance(value, dict):
        return value.get("value") or value.get("name") or value.get("displayName")
    return value


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _lines(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, list):
        return [str(_text(v)) for v in value]
    return None


def _jira_time(value: Any) -> datetime | None:
    """Jira's `2026-11-26T10:00:00.000+0000` as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None


def dump(value: Any) -> str:
    """Canonical JSON, for digests of ticket fields."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
