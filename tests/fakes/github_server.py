"""A local, threaded, stateful GitHub REST API for tests, driven over real HTTP.

`FakeGitHub` answers the part of GitHub's REST API (version 2022-11-28) that the code-host
adapter reads, in GitHub's JSON shapes: pull requests with their reviews and files,
the pull requests associated with a commit, branch protection's required status checks,
check runs, code-scanning analyses and alerts, and deployments with their statuses (which
can also be created over HTTP, as a deployer would). Lists page like GitHub's (`per_page`
up to 100, default 30, `page`) with real `Link` headers, and every authenticated answer
carries `x-ratelimit-*` headers.

Tests seed it through the Python API (`add_repo`, `add_pull`, `push`, `review`,
`add_check_run`, `protect`, `add_analysis`, `add_alert`, `add_deployment`, ...), inject
faults (`fail`, `secondary_rate_limit`, `primary_rate_limit`, `stall`, `malformed`), set a
real rate-limit budget (`set_rate_limit`), and assert on what was asked (`requests`,
`count`).

Choices where GitHub varies or is unspecified (documented once, here):

* Tokens are opaque; each belongs to one login. A bad or missing token is a 401
  `Bad credentials` (GitHub would serve public data anonymously: the fake serves none).
* Errors carry `message`, `documentation_url` and `status`, as GitHub's do now; 404s use
  GitHub's own messages: `Not Found`, `Branch not found`, `Branch not protected`,
  `Required status checks not enabled`, `no analysis found`.
* A pending review is listed only to its own reviewer, and has no `submitted_at`.
* Check runs list with `filter=latest` (the default): the newest run of each name.
* The pull requests associated with a commit are those it is the head of, was pushed to
  or is the merge commit of, newest first, as pull-request-simple objects (GitHub's
  narrowing to the merged one once the commit is on the default branch is not modelled).
  An unknown commit is a 422 `No commit found for SHA: ...`, as on GitHub's other
  commit endpoints.
* A code-scanning alert has an instance (with a state) per ref; listed for a ref, the
  alert shows that instance's state. Without `ref` the default branch is meant.
* Deployments and deployment statuses list newest first. `POST .../deployments` checks
  `required_contexts` against the commit's check runs (all of them when it is omitted)
  and answers 409 when one is not a success; `auto_merge` is ignored.
* Times are real UTC time unless seeded; ids and numbers grow from fixed starts.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

HTML = "https://github.com"
"""Where `html_url`s point (never fetched)."""

DOCS = "https://docs.github.com/rest"
DEPLOYMENT_STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending",
                     "success")
_Reply = tuple[int, Any]
MAX_LISTED_COMMITS = 250
"""GitHub's pull-request commits endpoint lists no more than this."""
_PULL_DETAILS = ("merged", "merged_by", "commits", "changed_files", "additions", "deletions")
_BAD_JSON = object()


def github_time(when: datetime) -> str:
    """GitHub's time format: `2026-11-26T10:00:00Z` (UTC, whole seconds)."""
    return f"{when.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def new_sha() -> str:
    """A random 40-hex commit sha."""
    return secrets.token_hex(20)


class FakeGitHubError(Exception):
    """A refusal in GitHub's error shape; raised by handlers and answered over HTTP."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        self.status = status
        self.payload = {"message": message, "documentation_url": DOCS, "status": str(status),
                        **extra}
        super().__init__(f"HTTP {status}: {message}")


def _not_found(message: str = "Not Found") -> FakeGitHubError:
    return FakeGitHubError(404, message)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake answered (tokens are never recorded)."""

    method: str
    path: str  # without the API prefix
    query: dict[str, str]  # repeated parameters joined with ","
    login: str | None  # who the token belongs to
    status: int
    body: Any = None
    fault: str | None = None  # "fail", "stall" or "malformed" when one was injected
    accept: str | None = None  # the Accept header
    api_version: str | None = None  # the X-GitHub-Api-Version header


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


@dataclass
class _Review:
    id: int
    login: str
    state: str
    commit_id: str
    submitted_at: datetime | None


@dataclass
class _Pull:
    number: int
    author: str
    title: str
    head_ref: str
    base_ref: str
    commits: list[str]
    files: list[tuple[str, str | None]]  # (filename, previous filename when renamed)
    created_at: datetime
    reviews: list[_Review] = field(default_factory=list)
    merged_at: datetime | None = None
    merge_commit_sha: str | None = None
    people: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    """Each commit's author and committer logins (None: an e-mail GitHub cannot link)."""

    @property
    def head_sha(self) -> str:
        return self.commits[-1]


@dataclass
class _CheckRun:
    id: int
    head_sha: str
    name: str
    status: str
    conclusion: str | None
    started_at: datetime


@dataclass
class _Analysis:
    id: int
    ref: str
    commit_sha: str
    tool: str
    category: str
    created_at: datetime


@dataclass
class _Alert:
    number: int
    rule_id: str
    severity: str
    security_severity: str | None
    tool: str
    path: str
    created_at: datetime
    instances: dict[str, tuple[str, str]]  # ref -> (state, commit sha)


@dataclass
class _Status:
    id: int
    state: str
    creator: str
    description: str
    created_at: datetime


@dataclass
class _Deployment:
    id: int
    sha: str
    ref: str
    environment: str
    creator: str
    created_at: datetime
    description: str | None
    production: bool
    transient: bool
    task: str = "deploy"
    payload: Any = field(default_factory=dict)
    statuses: list[_Status] = field(default_factory=list)  # oldest first


@dataclass
class _Repo:
    id: int
    full_name: str
    default_branch: str
    branches: dict[str, str]  # name -> head sha
    commits: set[str] = field(default_factory=set)
    pulls: dict[int, _Pull] = field(default_factory=dict)
    protection: dict[str, list[str] | None] = field(default_factory=dict)  # None: no checks
    check_runs: list[_CheckRun] = field(default_factory=list)
    analyses: list[_Analysis] = field(default_factory=list)
    alerts: list[_Alert] = field(default_factory=list)
    deployments: dict[int, _Deployment] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # name -> sha
    next_number: int = 1


class FakeGitHub:
    """GitHub's REST API on 127.0.0.1, for use as a context manager.

    Example:
        with FakeGitHub() as github:
            token = github.add_token("deployer")
            github.add_repo("acme/api")
            number = github.add_pull("acme/api", "alice", files=["src/app.py"])
            host = GitHubCodeHost(github.url, SecretStr(token))
    """

    def __init__(self, *, prefix: str = "", max_listed_files: int = 3000,
                 port: int = 0) -> None:
        """Set up the state; the server starts on `__enter__`.

        Args:
            prefix: the API's path on the host: "" as on api.github.com, "/api/v3" as on
                GitHub Enterprise Server.
            max_listed_files: a pull request's files listed at most (GitHub: 3000).
            port: TCP port on 127.0.0.1; 0 picks a free one.
        """
        self.prefix = prefix.rstrip("/")
        self.max_listed_files = max_listed_files
        self._port = port
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._records: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._tokens: dict[str, str] = {}  # token -> login
        self._user_ids: dict[str, int] = {}
        self._repos: dict[str, _Repo] = {}
        self._counter = 1000
        self._limit = 5000
        self._reset_at = time.time() + 3600
        self._used: dict[str, int] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FakeGitHub:
        """Start serving in a daemon thread."""
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.api = _Api(self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fake-github", daemon=True)
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
    def host_url(self) -> str:
        """`http://127.0.0.1:PORT` (only while running)."""
        if self._server is None:
            raise RuntimeError("FakeGitHub is not running: use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """The API's base URL, the adapter's `base_url` (the host URL plus the prefix)."""
        return self.host_url + self.prefix

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

    def fail(self, path_regex: str, status: int = 502, *, times: int = 1,
             method: str | None = None, body: Any = None,
             headers: Mapping[str, str] | None = None) -> None:
        """Answer the next `times` matching requests with `status` instead of serving them.

        Args:
            path_regex: searched (`re.search`) in the path without prefix or query.
            status: the status to answer, e.g. 502, 403, 429.
            times: how many matching requests get the fault.
            method: only requests with this method; None for any.
            body: JSON body; by default GitHub's error shape with the status phrase.
            headers: response headers, e.g. `Retry-After` or `x-ratelimit-*`.
        """
        if body is None:
            body = FakeGitHubError(status, HTTPStatus(status).phrase).payload
        self._add_fault(_Fault("fail", re.compile(path_regex), method, times, status,
                               dict(headers or {}), body))

    def secondary_rate_limit(self, path_regex: str, retry_after: int | datetime | None = 60,
                             *, status: int = 403, times: int = 1) -> None:
        """Answer as GitHub does when a secondary rate limit is hit.

        Args:
            path_regex: as for `fail`.
            retry_after: the `Retry-After` header: seconds, an HTTP-date, or None for none.
            status: 403 (GitHub's usual answer) or 429.
            times: how many matching requests get it.
        """
        headers = {"x-ratelimit-limit": str(self._limit), "x-ratelimit-remaining": "4999",
                   "x-ratelimit-reset": str(int(self._reset_at)), "x-ratelimit-resource": "core"}
        if isinstance(retry_after, datetime):
            headers["Retry-After"] = format_datetime(retry_after.astimezone(UTC), usegmt=True)
        elif retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self.fail(path_regex, status, times=times, headers=headers,
                  body=FakeGitHubError(status, "You have exceeded a secondary rate limit. "
                                       "Please wait a few minutes before you try again.").payload)

    def primary_rate_limit(self, path_regex: str, reset_at: datetime, *, status: int = 403,
                           times: int = 1) -> None:
        """Answer as GitHub does when the primary (hourly) limit is used up until `reset_at`."""
        self.fail(path_regex, status, times=times, headers=self._exhausted(reset_at.timestamp()),
                  body=FakeGitHubError(status, "API rate limit exceeded for user ID 1.").payload)

    def set_rate_limit(self, limit: int, reset_at: datetime | None = None) -> None:
        """A primary rate-limit budget per token: `limit` requests until `reset_at`."""
        with self._lock:
            self._limit = limit
            self._used.clear()
            if reset_at is not None:
                self._reset_at = reset_at.timestamp()

    def stall(self, path_regex: str, seconds: float, *, times: int = 1,
              method: str | None = None) -> None:
        """Wait `seconds` (or until the fake closes) before serving matching requests."""
        self._add_fault(_Fault("stall", re.compile(path_regex), method, times, seconds=seconds))

    def malformed(self, path_regex: str, *, times: int = 1, method: str | None = None) -> None:
        """Answer matching requests with 200 and a body that is not valid JSON."""
        self._add_fault(_Fault("malformed", re.compile(path_regex), method, times))

    def _exhausted(self, reset: float) -> dict[str, str]:
        return {"x-ratelimit-limit": str(self._limit), "x-ratelimit-remaining": "0",
                "x-ratelimit-used": str(self._limit), "x-ratelimit-reset": str(int(reset)),
                "x-ratelimit-resource": "core"}

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

    # --- tokens and rate limits --------------------------------------------------------------

    def add_token(self, login: str, token: str | None = None) -> str:
        """A token that authenticates as `login`; returns it."""
        token = token or f"ghp_{secrets.token_urlsafe(27)}"
        with self._lock:
            self._tokens[token] = login
            self._user(login)
        return token

    def _authenticate(self, header: str | None) -> str | None:
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        for token, login in self._tokens.items():
            if hmac.compare_digest(token.encode(), value.strip().encode()):
                return login
        return None

    def _spend(self, login: str) -> tuple[bool, dict[str, str]]:
        """Count one request against `login`'s budget: (allowed, x-ratelimit headers)."""
        with self._lock:
            if time.time() >= self._reset_at:
                self._used.clear()
                self._reset_at = time.time() + 3600
            if self._used.get(login, 0) >= self._limit:
                return False, self._exhausted(self._reset_at)
            used = self._used[login] = self._used.get(login, 0) + 1
            return True, {"x-ratelimit-limit": str(self._limit),
                          "x-ratelimit-remaining": str(self._limit - used),
                          "x-ratelimit-used": str(used),
                          "x-ratelimit-reset": str(int(self._reset_at)),
                          "x-ratelimit-resource": "core"}

    def _user(self, login: str) -> dict[str, Any]:
        with self._lock:
            if login not in self._user_ids:
                self._user_ids[login] = 100 + len(self._user_ids)
            uid = self._user_ids[login]
        return {"login": login, "id": uid, "node_id": f"U_{uid}", "type": "User",
                "site_admin": False, "url": f"{self.url}/users/{login}",
                "html_url": f"{HTML}/{login}"}

    # --- seeding -----------------------------------------------------------------------------

    def _next_id(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _repo(self, full_name: str) -> _Repo:
        repo = self._repos.get(full_name.lower())
        if repo is None:
            raise _not_found()
        return repo

    def add_repo(self, full_name: str, default_branch: str = "main") -> str:
        """Add a repository ("owner/name") whose default branch has one commit; its sha."""
        sha = new_sha()
        with self._lock:
            self._repos[full_name.lower()] = _Repo(self._next_id(), full_name, default_branch,
                                                   {default_branch: sha}, {sha})
        return sha

    def tag(self, repo: str, name: str, sha: str) -> None:
        """Tag commit `sha` (a lightweight tag)."""
        with self._lock:
            found = self._repo(repo)
            found.tags[name] = sha
            found.commits.add(sha)

    def add_branch(self, repo: str, branch: str, sha: str | None = None) -> str:
        """Add (or move) a branch to `sha` (a new commit by default); returns the sha."""
        sha = sha or new_sha()
        with self._lock:
            found = self._repo(repo)
            found.branches[branch] = sha
            found.commits.add(sha)
        return sha

    def add_pull(self, repo: str, author: str, title: str = "A change", *,
                 files: Sequence[str | tuple[str, str]] = (), head_sha: str | None = None,
                 base: str | None = None, head_ref: str | None = None,
                 created_at: datetime | None = None) -> int:
        """Open a pull request and return its number.

        Args:
            repo: "owner/name".
            author: the author's login.
            title: its title.
            files: changed paths; a (new, old) pair is a rename.
            head_sha: its first commit (random by default).
            base: the branch it merges into (the default branch by default).
            head_ref: its branch (`change-N` by default).
            created_at: when it was opened (now by default).
        """
        head_sha = head_sha or new_sha()
        with self._lock:
            found = self._repo(repo)
            number = found.next_number
            found.next_number += 1
            head_ref = head_ref or f"change-{number}"
            found.pulls[number] = _Pull(
                number, author, title, head_ref, base or found.default_branch, [head_sha],
                [(f, None) if isinstance(f, str) else (f[0], f[1]) for f in files],
                created_at or datetime.now(UTC), people={head_sha: (author, author)})
            found.branches[head_ref] = head_sha
            found.commits.add(head_sha)
        return number

    def push(self, repo: str, number: int, sha: str | None = None, *,
             author: str | None = "", committer: str | None = "") -> str:
        """Push a new head commit to the pull request; returns its sha.

        `author` and `committer` are logins (the pull request's author by default; None
        for an e-mail GitHub links to no account).
        """
        sha = sha or new_sha()
        with self._lock:
            found = self._repo(repo)
            pull = found.pulls[number]
            pull.people[sha] = (pull.author if author == "" else author,
                                pull.author if committer == "" else committer)
            pull.commits.append(sha)
            found.branches[pull.head_ref] = sha
            found.commits.add(sha)
        return sha

    def review(self, repo: str, number: int, reviewer: str, state: str = "APPROVED", *,
               commit_sha: str | None = None, submitted_at: datetime | None = None) -> int:
        """Submit a review (on the head commit unless `commit_sha`); returns its id."""
        with self._lock:
            pull = self._repo(repo).pulls[number]
            when = None if state == "PENDING" else (submitted_at or datetime.now(UTC))
            review = _Review(self._next_id(), reviewer, state, commit_sha or pull.head_sha, when)
            pull.reviews.append(review)
            self._user(reviewer)
            return review.id

    def merge(self, repo: str, number: int, sha: str | None = None) -> str:
        """Merge the pull request into its base; returns the merge commit's sha."""
        sha = sha or new_sha()
        with self._lock:
            found = self._repo(repo)
            pull = found.pulls[number]
            pull.merged_at, pull.merge_commit_sha = datetime.now(UTC), sha
            found.branches[pull.base_ref] = sha
            found.commits.add(sha)
        return sha

    def add_check_run(self, repo: str, sha: str, name: str, status: str = "completed",
                      conclusion: str | None = "success") -> int:
        """Record a check run on commit `sha` (a re-run is another call); returns its id."""
        with self._lock:
            found = self._repo(repo)
            run = _CheckRun(self._next_id(), sha, name, status,
                            conclusion if status == "completed" else None, datetime.now(UTC))
            found.check_runs.append(run)
            found.commits.add(sha)
            return run.id

    def protect(self, repo: str, branch: str, required: Sequence[str] | None = ()) -> None:
        """Protect `branch`, requiring these status checks (None: status checks not enabled)."""
        with self._lock:
            self._repo(repo).protection[branch] = None if required is None else list(required)

    def unprotect(self, repo: str, branch: str) -> None:
        """Remove the branch's protection."""
        with self._lock:
            self._repo(repo).protection.pop(branch, None)

    def add_analysis(self, repo: str, sha: str, ref: str, *, tool: str = "CodeQL",
                     category: str = ".github/workflows/codeql.yml:analyze",
                     created_at: datetime | None = None) -> int:
        """Record a code-scanning analysis of commit `sha` on `ref`; returns its id."""
        with self._lock:
            analysis = _Analysis(self._next_id(), ref, sha, tool, category,
                                 created_at or datetime.now(UTC))
            self._repo(repo).analyses.append(analysis)
            return analysis.id

    def add_alert(self, repo: str, ref: str, rule_id: str, *, severity: str = "warning",
                  security_severity: str | None = None, path: str = "src/app.py",
                  state: str = "open", tool: str = "CodeQL",
                  commit_sha: str | None = None) -> int:
        """Raise a code-scanning alert on `ref`; returns its number.

        Args:
            severity: the rule's severity: error, warning, note or none.
            security_severity: critical, high, medium or low for security rules.
            state: its state on `ref`: open, dismissed or fixed.
        """
        with self._lock:
            found = self._repo(repo)
            number = found.next_number
            found.next_number += 1
            found.alerts.append(_Alert(number, rule_id, severity, security_severity, tool, path,
                                       datetime.now(UTC), {ref: (state, commit_sha or "")}))
            return number

    def set_alert(self, repo: str, number: int, ref: str, state: str = "open") -> None:
        """Set the alert's state on `ref` (e.g. "fixed" there, or "open" on another ref)."""
        with self._lock:
            alert = next(a for a in self._repo(repo).alerts if a.number == number)
            alert.instances[ref] = (state, alert.instances.get(ref, ("", ""))[1])

    def add_deployment(self, repo: str, sha: str, environment: str = "production", *,
                       creator: str, ref: str | None = None, description: str | None = None,
                       created_at: datetime | None = None) -> int:
        """Record a deployment of commit `sha` as made by `creator`; returns its id."""
        with self._lock:
            found = self._repo(repo)
            deployment = _Deployment(self._next_id(), sha, ref or sha, environment, creator,
                                     created_at or datetime.now(UTC), description,
                                     production=environment == "production", transient=False)
            found.deployments[deployment.id] = deployment
            found.commits.add(sha)
            self._user(creator)
            return deployment.id

    def add_deployment_status(self, repo: str, deployment_id: int, state: str, *,
                              creator: str, description: str = "",
                              created_at: datetime | None = None,
                              auto_inactive: bool = True) -> int:
        """Add a status to a deployment, as GitHub would (`auto_inactive` included)."""
        if state not in DEPLOYMENT_STATES:
            raise ValueError(f"state must be one of {DEPLOYMENT_STATES}")
        with self._lock:
            found = self._repo(repo)
            deployment = found.deployments[deployment_id]
            status = _Status(self._next_id(), state, creator, description,
                             created_at or datetime.now(UTC))
            deployment.statuses.append(status)
            self._user(creator)
            if state == "success" and auto_inactive:
                self._deactivate_before(found, deployment, creator)
            return status.id

    def _deactivate_before(self, repo: _Repo, current: _Deployment, creator: str) -> None:
        """GitHub's `auto_inactive`: earlier successful non-production, non-transient
        deployments to the same environment get an `inactive` status."""
        for other in repo.deployments.values():
            if (other.id < current.id and other.environment == current.environment
                    and not other.production and not other.transient and other.statuses
                    and other.statuses[-1].state == "success"):
                other.statuses.append(_Status(self._next_id(), "inactive", creator, "",
                                              datetime.now(UTC)))

    # --- views (GitHub's JSON shapes) ----------------------------------------------------------

    def _api(self, repo: _Repo) -> str:
        return f"{self.url}/repos/{repo.full_name}"

    def _pull_json(self, repo: _Repo, pull: _Pull) -> dict[str, Any]:
        def branch(ref: str, sha: str) -> dict[str, Any]:
            owner = repo.full_name.split("/")[0]
            return {"label": f"{owner}:{ref}", "ref": ref, "sha": sha,
                    "user": self._user(owner), "repo": {"id": repo.id,
                                                        "full_name": repo.full_name}}

        merged = pull.merged_at is not None
        return {
            "url": f"{self._api(repo)}/pulls/{pull.number}", "id": 50000 + pull.number,
            "node_id": f"PR_{pull.number}", "html_url": f"{HTML}/{repo.full_name}/pull/"
            f"{pull.number}", "number": pull.number, "state": "closed" if merged else "open",
            "locked": False, "title": pull.title, "user": self._user(pull.author), "body": None,
            "created_at": github_time(pull.created_at),
            "updated_at": github_time(pull.merged_at or pull.created_at),
            "closed_at": github_time(pull.merged_at) if pull.merged_at else None,
            "merged_at": github_time(pull.merged_at) if pull.merged_at else None,
            "merge_commit_sha": pull.merge_commit_sha, "draft": False,
            "head": branch(pull.head_ref, pull.head_sha),
            "base": branch(pull.base_ref, repo.branches.get(pull.base_ref, "")),
            "author_association": "MEMBER", "merged": merged,
            "merged_by": self._user(pull.author) if merged else None,
            "commits": len(pull.commits), "changed_files": len(pull.files),
            "additions": 10 * len(pull.files), "deletions": 0}

    def _commit_json(self, repo: _Repo, sha: str, author: str | None,
                     committer: str | None) -> dict[str, Any]:
        def who(login: str | None) -> dict[str, Any]:
            name = login or "Unlinked Person"
            return {"name": name, "email": f"{name.lower().replace(' ', '.')}@example.com",
                    "date": github_time(datetime.now(UTC))}

        return {"sha": sha, "node_id": f"C_{sha[:8]}", "url": f"{self._api(repo)}/commits/{sha}",
                "html_url": f"{HTML}/{repo.full_name}/commit/{sha}",
                "commit": {"author": who(author), "committer": who(committer),
                           "message": "a commit", "tree": {"sha": sha}},
                "author": self._user(author) if author else None,
                "committer": self._user(committer) if committer else None,
                "parents": []}

    def _pull_simple_json(self, repo: _Repo, pull: _Pull) -> dict[str, Any]:
        """A pull request as GitHub lists it: without the counts and merge details."""
        full = self._pull_json(repo, pull)
        for detail in _PULL_DETAILS:
            del full[detail]
        return full

    def _review_json(self, repo: _Repo, pull: _Pull, review: _Review) -> dict[str, Any]:
        out = {"id": review.id, "node_id": f"PRR_{review.id}", "user": self._user(review.login),
               "body": "", "state": review.state, "author_association": "MEMBER",
               "html_url": f"{HTML}/{repo.full_name}/pull/{pull.number}"
                           f"#pullrequestreview-{review.id}",
               "pull_request_url": f"{self._api(repo)}/pulls/{pull.number}",
               "commit_id": review.commit_id}
        if review.submitted_at is not None:
            out["submitted_at"] = github_time(review.submitted_at)
        return out

    @staticmethod
    def _file_json(repo: _Repo, pull: _Pull, filename: str,
                   previous: str | None) -> dict[str, Any]:
        out = {"sha": new_sha(), "filename": filename,
               "status": "renamed" if previous else "modified", "additions": 10,
               "deletions": 0, "changes": 10,
               "blob_url": f"{HTML}/{repo.full_name}/blob/{pull.head_sha}/{filename}",
               "raw_url": f"{HTML}/{repo.full_name}/raw/{pull.head_sha}/{filename}",
               "contents_url": f"{repo.full_name}/contents/{filename}?ref={pull.head_sha}",
               "patch": "@@ -1 +1 @@"}
        if previous:
            out["previous_filename"] = previous
        return out

    def _check_run_json(self, repo: _Repo, run: _CheckRun) -> dict[str, Any]:
        done = run.status == "completed"
        return {"id": run.id, "head_sha": run.head_sha, "node_id": f"CR_{run.id}",
                "external_id": "", "url": f"{self._api(repo)}/check-runs/{run.id}",
                "html_url": f"{HTML}/{repo.full_name}/runs/{run.id}",
                "details_url": f"{HTML}/{repo.full_name}/actions/runs/{run.id}",
                "status": run.status, "conclusion": run.conclusion,
                "started_at": github_time(run.started_at),
                "completed_at": github_time(run.started_at) if done else None,
                "output": {"title": run.name, "summary": "", "text": None,
                           "annotations_count": 0, "annotations_url": ""},
                "name": run.name, "check_suite": {"id": run.id + 7},
                "app": {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"},
                "pull_requests": []}

    def _analysis_json(self, repo: _Repo, analysis: _Analysis) -> dict[str, Any]:
        return {"ref": analysis.ref, "commit_sha": analysis.commit_sha,
                "analysis_key": analysis.category.rsplit(":", 1)[0],
                "environment": "{}", "error": "", "category": analysis.category,
                "created_at": github_time(analysis.created_at), "results_count": 0,
                "rules_count": 100, "id": analysis.id,
                "url": f"{self._api(repo)}/code-scanning/analyses/{analysis.id}",
                "sarif_id": f"sarif-{analysis.id}", "deletable": True, "warning": "",
                "tool": {"name": analysis.tool, "guid": None, "version": "2.20.0"}}

    def _alert_json(self, repo: _Repo, alert: _Alert, ref: str) -> dict[str, Any]:
        state, commit = alert.instances[ref]
        url = f"{self._api(repo)}/code-scanning/alerts/{alert.number}"
        return {"number": alert.number, "created_at": github_time(alert.created_at),
                "updated_at": github_time(alert.created_at), "url": url,
                "html_url": f"{HTML}/{repo.full_name}/security/code-scanning/{alert.number}",
                "state": state, "fixed_at": None, "dismissed_by": None, "dismissed_at": None,
                "dismissed_reason": None, "dismissed_comment": None,
                "rule": {"id": alert.rule_id, "severity": alert.severity,
                         "security_severity_level": alert.security_severity,
                         "description": alert.rule_id, "name": alert.rule_id,
                         "tags": ["security"]},
                "tool": {"name": alert.tool, "guid": None, "version": "2.20.0"},
                "most_recent_instance": {
                    "ref": ref, "analysis_key": "codeql", "environment": "{}",
                    "category": "codeql", "state": state, "commit_sha": commit,
                    "message": {"text": alert.rule_id},
                    "location": {"path": alert.path, "start_line": 1, "end_line": 1,
                                 "start_column": 1, "end_column": 2},
                    "classifications": []},
                "instances_url": f"{url}/instances"}

    def _deployment_json(self, repo: _Repo, deployment: _Deployment) -> dict[str, Any]:
        url = f"{self._api(repo)}/deployments/{deployment.id}"
        return {"url": url, "id": deployment.id, "node_id": f"DE_{deployment.id}",
                "sha": deployment.sha, "ref": deployment.ref, "task": deployment.task,
                "payload": deployment.payload, "original_environment": deployment.environment,
                "environment": deployment.environment, "description": deployment.description,
                "creator": self._user(deployment.creator),
                "created_at": github_time(deployment.created_at),
                "updated_at": github_time(deployment.statuses[-1].created_at
                                          if deployment.statuses else deployment.created_at),
                "statuses_url": f"{url}/statuses", "repository_url": self._api(repo),
                "transient_environment": deployment.transient,
                "production_environment": deployment.production}

    def _status_json(self, repo: _Repo, deployment: _Deployment,
                     status: _Status) -> dict[str, Any]:
        url = f"{self._api(repo)}/deployments/{deployment.id}"
        return {"url": f"{url}/statuses/{status.id}", "id": status.id,
                "node_id": f"DES_{status.id}", "state": status.state,
                "creator": self._user(status.creator), "description": status.description,
                "environment": deployment.environment, "target_url": "", "log_url": "",
                "environment_url": "", "created_at": github_time(status.created_at),
                "updated_at": github_time(status.created_at), "deployment_url": url,
                "repository_url": self._api(repo)}


def _page(items: Sequence[Any], call: _Call, base_url: str) -> tuple[list[Any], str | None]:
    """One page of `items` per the call's `per_page`/`page`, and its `Link` header."""
    per_page = min(max(_int(call.arg("per_page"), 30), 1), 100)
    page = max(_int(call.arg("page"), 1), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    shown = list(items[(page - 1) * per_page:page * per_page])

    def link(number: int, rel: str) -> str:
        query = {k: v for k, v in call.query.items() if k != "page"}
        query["page"] = str(number)
        return f'<{base_url}{call.full_path}?{urlencode(query)}>; rel="{rel}"'

    rels = []
    if page > 1:
        rels += [link(page - 1, "prev"), link(1, "first")]
    if page < last:
        rels += [link(page + 1, "next"), link(last, "last")]
    return shown, ", ".join(rels) or None


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


@dataclass(frozen=True)
class _Call:
    method: str
    path: str  # without the prefix
    full_path: str  # with it
    query: dict[str, str]
    body: Any
    login: str

    def arg(self, name: str) -> str | None:
        return self.query.get(name)


_R = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), handler) for method, pattern, handler in (
        ("GET", r"/user", "user"),
        ("GET", _R + r"/pulls/(?P<number>\d+)", "pull"),
        ("GET", _R + r"/pulls/(?P<number>\d+)/reviews", "reviews"),
        ("GET", _R + r"/pulls/(?P<number>\d+)/files", "files"),
        ("GET", _R + r"/pulls/(?P<number>\d+)/commits", "pull_commits"),
        ("GET", _R + r"/branches/(?P<branch>.+)/protection/required_status_checks",
         "required_status_checks"),
        ("GET", _R + r"/commits/(?P<ref>[^/]+)", "commit"),
        ("GET", _R + r"/commits/(?P<ref>[^/]+)/check-runs", "check_runs"),
        ("GET", _R + r"/commits/(?P<ref>[^/]+)/pulls", "commit_pulls"),
        ("GET", _R + r"/code-scanning/analyses", "analyses"),
        ("GET", _R + r"/code-scanning/alerts", "alerts"),
        ("GET", _R + r"/deployments", "deployments"),
        ("POST", _R + r"/deployments", "create_deployment"),
        ("GET", _R + r"/deployments/(?P<id>\d+)", "deployment"),
        ("GET", _R + r"/deployments/(?P<id>\d+)/statuses", "statuses"),
        ("POST", _R + r"/deployments/(?P<id>\d+)/statuses", "create_status"),
    ))


class _Api:
    """Turns HTTP requests into operations on the fake and answers in GitHub's shapes."""

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake

    def handle(self, method: str, target: str, raw: bytes,
               request_headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Inject faults, authenticate, dispatch, record; returns (status, headers, body).

        `request_headers` are keyed by lower-case name.
        """
        fake = self.fake
        authorization = request_headers.get("authorization")
        split = urlsplit(target)
        full_path = unquote(split.path)
        path = full_path.removeprefix(fake.prefix) if full_path.startswith(
            fake.prefix + "/") else "\0" + full_path
        query = {k: ",".join(v) for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        login = fake._authenticate(authorization)
        fault = fake._take_fault(method, path)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = _BAD_JSON
        headers: dict[str, str] = {}
        if fault is not None and fault.kind == "stall":
            fake._closing.wait(fault.seconds)
        if fault is not None and fault.kind == "fail":
            status, out, headers = fault.status, json.dumps(fault.body).encode(), fault.headers
        elif fault is not None and fault.kind == "malformed":
            status, out = 200, b'{"number": 1, "title": '
        else:
            status, headers, payload = self._serve(method, path, full_path, query, body, login)
            out = json.dumps(payload, separators=(",", ":")).encode()
        fake._record(RecordedRequest(method, path.lstrip("\0"), query, login, status,
                                     None if body is _BAD_JSON else body,
                                     fault.kind if fault else None,
                                     request_headers.get("accept"),
                                     request_headers.get("x-github-api-version")))
        return status, headers, out

    def _serve(self, method: str, path: str, full_path: str, query: dict[str, str], body: Any,
               login: str | None) -> tuple[int, dict[str, str], Any]:
        if login is None:
            return 401, {}, {"message": "Bad credentials", "documentation_url": DOCS,
                             "status": "401"}
        allowed, limits = self.fake._spend(login)
        if not allowed:
            return 403, limits, FakeGitHubError(403, f"API rate limit exceeded for user ID "
                                                f"{self.fake._user(login)['id']}.").payload
        headers = dict(limits)
        try:
            if body is _BAD_JSON:
                raise FakeGitHubError(400, "Problems parsing JSON")
            status, payload = self._dispatch(
                _Call(method, path, full_path, query, body, login), headers)
        except FakeGitHubError as exc:
            status, payload = exc.status, exc.payload
        except Exception as exc:  # a bug in the fake: answer it rather than drop the socket
            status, payload = 500, {"message": f"Fake GitHub failed: {exc!r}"}
        return status, headers, payload

    def _dispatch(self, call: _Call, headers: dict[str, str]) -> _Reply:
        allowed = False
        for route_method, pattern, name in _ROUTES:
            match = pattern.fullmatch(call.path)
            if match is None:
                continue
            allowed = True
            if route_method != call.method:
                continue
            endpoint: Callable[..., _Reply] = getattr(self, name)
            args = match.groupdict()
            with self.fake._lock:
                if "owner" in args:
                    repo = self.fake._repo(f"{args.pop('owner')}/{args.pop('name')}")
                    return endpoint(call, headers, repo, **args)
                return endpoint(call, headers, **args)
        if allowed:
            raise FakeGitHubError(404, "Not Found")  # GitHub answers 404 for a wrong method
        raise _not_found()

    def _paged(self, call: _Call, headers: dict[str, str], items: Sequence[Any]) -> list[Any]:
        shown, link = _page(items, call, self.fake.host_url)
        if link:
            headers["Link"] = link
        return shown

    # --- endpoints ---------------------------------------------------------------------------

    def user(self, call: _Call, headers: dict[str, str]) -> _Reply:
        return 200, self.fake._user(call.login)

    def pull(self, call: _Call, headers: dict[str, str], repo: _Repo, number: str) -> _Reply:
        return 200, self.fake._pull_json(repo, self._pull(repo, number))

    def reviews(self, call: _Call, headers: dict[str, str], repo: _Repo,
                number: str) -> _Reply:
        pull = self._pull(repo, number)
        visible = [r for r in pull.reviews if r.state != "PENDING" or r.login == call.login]
        return 200, [self.fake._review_json(repo, pull, r)
                     for r in self._paged(call, headers, visible)]

    def files(self, call: _Call, headers: dict[str, str], repo: _Repo, number: str) -> _Reply:
        pull = self._pull(repo, number)
        listed = pull.files[:self.fake.max_listed_files]
        return 200, [self.fake._file_json(repo, pull, name, previous)
                     for name, previous in self._paged(call, headers, listed)]

    def pull_commits(self, call: _Call, headers: dict[str, str], repo: _Repo,
                     number: str) -> _Reply:
        """GitHub lists at most 250 commits of a pull request, oldest first."""
        pull = self._pull(repo, number)
        listed = pull.commits[:MAX_LISTED_COMMITS]
        return 200, [self.fake._commit_json(repo, sha, *pull.people.get(sha, (None, None)))
                     for sha in self._paged(call, headers, listed)]

    def commit(self, call: _Call, headers: dict[str, str], repo: _Repo, ref: str) -> _Reply:
        """A commit by sha, branch or tag, as GitHub resolves a ref; 422 if none."""
        sha = (ref if ref in repo.commits else repo.branches.get(ref) or repo.tags.get(ref))
        if sha is None:
            raise FakeGitHubError(422, f"No commit found for SHA: {ref}")
        return 200, self.fake._commit_json(repo, sha, None, None)

    def commit_pulls(self, call: _Call, headers: dict[str, str], repo: _Repo,
                     ref: str) -> _Reply:
        if ref not in repo.commits:
            raise FakeGitHubError(422, f"No commit found for SHA: {ref}")
        found = [p for p in sorted(repo.pulls.values(), key=lambda p: p.number, reverse=True)
                 if ref in p.commits or ref == p.merge_commit_sha]
        return 200, [self.fake._pull_simple_json(repo, p)
                     for p in self._paged(call, headers, found)]

    def required_status_checks(self, call: _Call, headers: dict[str, str], repo: _Repo,
                               branch: str) -> _Reply:
        if branch not in repo.branches:
            raise _not_found("Branch not found")
        if branch not in repo.protection:
            raise _not_found("Branch not protected")
        required = repo.protection[branch]
        if required is None:
            raise _not_found("Required status checks not enabled")
        url = f"{self.fake._api(repo)}/branches/{branch}/protection/required_status_checks"
        return 200, {"url": url, "strict": True, "contexts": list(required),
                     "contexts_url": f"{url}/contexts",
                     "checks": [{"context": name, "app_id": 15368} for name in required]}

    def check_runs(self, call: _Call, headers: dict[str, str], repo: _Repo, ref: str) -> _Reply:
        sha = repo.branches.get(ref, ref)
        if sha not in repo.commits:
            raise FakeGitHubError(422, f"No commit found for SHA: {ref}")
        runs = [r for r in repo.check_runs if r.head_sha == sha
                and call.arg("check_name") in (None, r.name)]
        if call.arg("filter") != "all":
            latest = {r.name: r for r in sorted(runs, key=lambda r: r.id)}
            runs = sorted(latest.values(), key=lambda r: r.id)
        return 200, {"total_count": len(runs),
                     "check_runs": [self.fake._check_run_json(repo, r)
                                    for r in self._paged(call, headers, runs)]}

    def analyses(self, call: _Call, headers: dict[str, str], repo: _Repo) -> _Reply:
        if not repo.analyses:
            raise _not_found("no analysis found")
        found = [a for a in sorted(repo.analyses, key=lambda a: (a.created_at, a.id),
                                   reverse=True)
                 if call.arg("sha") in (None, a.commit_sha) and call.arg("ref") in (None, a.ref)
                 and call.arg("tool_name") in (None, a.tool)]
        return 200, [self.fake._analysis_json(repo, a) for a in self._paged(call, headers, found)]

    def alerts(self, call: _Call, headers: dict[str, str], repo: _Repo) -> _Reply:
        if not repo.analyses:
            raise _not_found("no analysis found")
        ref = call.arg("ref") or f"refs/heads/{repo.default_branch}"
        found = [a for a in sorted(repo.alerts, key=lambda a: a.number, reverse=True)
                 if ref in a.instances and call.arg("state") in (None, a.instances[ref][0])]
        return 200, [self.fake._alert_json(repo, a, ref)
                     for a in self._paged(call, headers, found)]

    def deployments(self, call: _Call, headers: dict[str, str], repo: _Repo) -> _Reply:
        found = [d for d in sorted(repo.deployments.values(),
                                   key=lambda d: (d.created_at, d.id), reverse=True)
                 if all(call.arg(k) in (None, getattr(d, k))
                        for k in ("sha", "ref", "task", "environment"))]
        return 200, [self.fake._deployment_json(repo, d)
                     for d in self._paged(call, headers, found)]

    def deployment(self, call: _Call, headers: dict[str, str], repo: _Repo, id: str) -> _Reply:
        return 200, self.fake._deployment_json(repo, self._deployment(repo, id))

    def statuses(self, call: _Call, headers: dict[str, str], repo: _Repo, id: str) -> _Reply:
        deployment = self._deployment(repo, id)
        newest_first = list(reversed(deployment.statuses))
        return 200, [self.fake._status_json(repo, deployment, s)
                     for s in self._paged(call, headers, newest_first)]

    def create_deployment(self, call: _Call, headers: dict[str, str], repo: _Repo) -> _Reply:
        body = call.body if isinstance(call.body, dict) else {}
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            raise FakeGitHubError(422, "Invalid request.\n\n\"ref\" wasn't supplied.")
        sha = repo.branches.get(ref, ref)
        if sha not in repo.commits:
            raise FakeGitHubError(422, f"No ref found for: {ref}")
        self._check_contexts(repo, sha, ref, body.get("required_contexts"))
        environment = str(body.get("environment") or "production")
        deployment = _Deployment(
            self.fake._next_id(), sha, ref, environment, call.login, datetime.now(UTC),
            body.get("description"),
            production=bool(body.get("production_environment", environment == "production")),
            transient=bool(body.get("transient_environment", False)),
            task=str(body.get("task") or "deploy"), payload=body.get("payload") or {})
        repo.deployments[deployment.id] = deployment
        return 201, self.fake._deployment_json(repo, deployment)

    def create_status(self, call: _Call, headers: dict[str, str], repo: _Repo,
                      id: str) -> _Reply:
        deployment = self._deployment(repo, id)
        body = call.body if isinstance(call.body, dict) else {}
        state = body.get("state")
        if state not in DEPLOYMENT_STATES:
            raise FakeGitHubError(422, "Validation Failed", errors=[
                {"resource": "DeploymentStatus", "field": "state", "code": "invalid"}])
        self.fake.add_deployment_status(repo.full_name, deployment.id, str(state),
                                        creator=call.login,
                                        description=str(body.get("description") or ""),
                                        auto_inactive=body.get("auto_inactive", True) is True)
        return 201, self.fake._status_json(repo, deployment, deployment.statuses[-1])

    # --- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _pull(repo: _Repo, number: str) -> _Pull:
        pull = repo.pulls.get(int(number))
        if pull is None:
            raise _not_found()
        return pull

    @staticmethod
    def _deployment(repo: _Repo, id: str) -> _Deployment:
        deployment = repo.deployments.get(int(id))
        if deployment is None:
            raise _not_found()
        return deployment

    @staticmethod
    def _check_contexts(repo: _Repo, sha: str, ref: str, required: Any) -> None:
        latest = {r.name: r for r in sorted(repo.check_runs, key=lambda r: r.id)
                  if r.head_sha == sha}
        names = list(latest) if required is None else [str(n) for n in required]
        failing = [n for n in names if n not in latest or latest[n].conclusion != "success"]
        if failing:
            raise FakeGitHubError(409, f"Conflict: Commit status checks failed for {ref}.",
                                  errors=[{"contexts": [{"context": n, "state": "failure"}
                                                        for n in failing],
                                           "resource": "Deployment",
                                           "field": "required_contexts"}])


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

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        sent = {name.lower(): value for name, value in self.headers.items()}
        status, headers, body = self.server.api.handle(self.command, self.path, raw, sent)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a stall beyond its timeout)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: request lines would be noise (and headers are never logged)."""
