"""The code host on GitHub (github.com or Enterprise Server), through its REST API.

`GitHubCodeHost` fills the `CodeHost` port with `requests`: pull requests with their
reviews and files, the pull requests behind a commit, branch protection's required
checks, check runs, code scanning, and deployments with their statuses. Lists are read
100 at a time by following GitHub's `Link: rel="next"` headers (only to the same host,
so the token never leaves it).

Every failure is one of two errors. `CodeHostUnavailable` is worth retrying: 429, 5xx,
no answer in time, a garbled answer (not JSON, or a field missing or of the wrong type,
named), and both of GitHub's rate limits: the primary one (`x-ratelimit-remaining: 0`,
wait until `x-ratelimit-reset`) and secondary ones (`Retry-After`, or a minute when
GitHub gave no wait). `CodeHostError` is a refusal with GitHub's own message; a 404 says
which resource was missing. Nothing retries here: the tasks that call the adapter are
the one retry layer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from pydantic import SecretStr
from requests.auth import AuthBase

from domain.code_host import CheckRun, CodeScan, Deployment, PullRequest, Review, ScanAlert
from integrations.jira_tickets import retry_after_seconds
from integrations.ports import CodeHostError, CodeHostUnavailable

API_VERSION = "2022-11-28"
"""The REST API version every request asks for."""

PER_PAGE = 100
"""GitHub's largest page."""

SECONDARY_LIMIT_WAIT = 60.0
"""GitHub's advice for a secondary rate limit that names no wait: at least a minute."""

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")
_NOT_PROTECTED = "branch not protected"
_NO_STATUS_CHECKS = "required status checks not enabled"
_NO_ANALYSIS = "no analysis found"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _BearerToken(AuthBase):
    """Adds the token to each request; its repr never shows it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request

    def __repr__(self) -> str:
        return "Bearer [secure]"


class _Fields:
    """Typed reads from one JSON object; a missing or ill-typed field is a garbled answer."""

    def __init__(self, data: Any, what: str, at: str = "") -> None:
        if not isinstance(data, dict):
            raise _garbled(what, at or "the answer", "an object")
        self.data: dict[str, Any] = data
        self.what = what
        self.at = at

    def _get(self, name: str, kind: type | tuple[type, ...], label: str,
             optional: bool) -> Any:
        value = self.data.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _garbled(self.what, self.at + name, label)
        return value

    def text(self, name: str) -> str:
        """A required string field."""
        return str(self._get(name, str, "a string", False))

    def opt_text(self, name: str) -> str | None:
        """A string field that may be absent or null."""
        value = self._get(name, str, "a string", True)
        return None if value is None else str(value)

    def number(self, name: str) -> int:
        """A required integer field."""
        return int(self._get(name, int, "an integer", False))

    def flag(self, name: str) -> bool:
        """A required boolean field."""
        return bool(self._get(name, bool, "a boolean", False))

    def when(self, name: str) -> datetime:
        """A required ISO 8601 time field, as an aware datetime."""
        value = self.opt_when(name)
        if value is None:
            raise _garbled(self.what, self.at + name, "a time")
        return value

    def opt_when(self, name: str) -> datetime | None:
        """An ISO 8601 time field that may be absent or null."""
        text = self.opt_text(name)
        if text is None:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise _garbled(self.what, self.at + name, "a time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def sub(self, name: str) -> _Fields:
        """A required nested object."""
        return _Fields(self._get(name, dict, "an object", False), self.what, f"{self.at}{name}.")

    def opt_sub(self, name: str) -> _Fields | None:
        """A nested object that may be absent or null."""
        value = self._get(name, dict, "an object", True)
        return None if value is None else _Fields(value, self.what, f"{self.at}{name}.")

    def items(self, name: str) -> list[Any]:
        """A required array field."""
        return list(self._get(name, list, "an array", False))

    def login(self, name: str) -> str:
        """The login of a user field; GitHub nulls the user of a deleted account: "ghost"."""
        user = self.opt_sub(name)
        return "ghost" if user is None else user.text("login")


def _garbled(what: str, field: str, kind: str) -> CodeHostUnavailable:
    return CodeHostUnavailable(f"GitHub's answer for {what} is garbled: {field} is missing "
                               f"or not {kind}")


class GitHubCodeHost:
    """`CodeHost` on GitHub's REST API; one `requests.Session`, closed by `close()`."""

    def __init__(self, base_url: str, token: SecretStr, timeout_seconds: float = 30,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        """Prepare the session; nothing is sent until a method is called.

        Args:
            base_url: the API root: `https://api.github.com`, or
                `https://HOST/api/v3` for GitHub Enterprise Server.
            token: a personal access token or an app installation token.
            timeout_seconds: the connect and read timeout of every request.
            clock: the current time, to turn `x-ratelimit-reset` into a wait.
        """
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        self.requests_made = 0
        """HTTP requests sent, answered or not (for tests and benchmarks)."""
        self._origin = urlsplit(self.base_url)[:2]
        self._auth = _BearerToken(token.get_secret_value())
        self._session = requests.Session()
        self._session.auth = self._auth
        self._session.headers.update({"Accept": "application/vnd.github+json",
                                      "X-GitHub-Api-Version": API_VERSION})

    def close(self) -> None:
        """Close the session's connections."""
        self._session.close()

    def __enter__(self) -> GitHubCodeHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the port -------------------------------------------------------------------------

    def pull_request(self, repo: str, number: int) -> PullRequest:
        """The pull request with every review (oldest first) and every changed path.

        Raises:
            CodeHostError: GitHub listed fewer files than the pull request changed
                (it lists at most 3000): the paths would be incomplete.
        """
        what = f"pull request {_repo(repo)}#{number}"
        path = f"/repos/{repo}/pulls/{int(number)}"
        pull = _Fields(self._get(path, what), what)
        reviews = [self._review(raw, f"reviews of {what}")
                   for raw in self._items(f"{path}/reviews", f"reviews of {what}")]
        files = self._items(f"{path}/files", f"files of {what}")
        changed = pull.data.get("changed_files")
        if isinstance(changed, int) and not isinstance(changed, bool) and changed > len(files):
            raise CodeHostError(f"GitHub lists only part of the files of {what} "
                                f"({len(files)} of {changed} changed files)")
        commits = self._items(f"{path}/commits", f"commits of {what}")
        count = pull.data.get("commits")
        if isinstance(count, int) and not isinstance(count, bool) and count > len(commits):
            raise CodeHostError(f"GitHub lists only part of the commits of {what} "
                                f"({len(commits)} of {count}): their authors cannot all be "
                                "checked against the approvers")
        return PullRequest(
            repo=repo, number=pull.number("number"), url=pull.text("html_url"),
            author=pull.login("user"), title=pull.text("title"),
            head_sha=pull.sub("head").text("sha"), base_branch=pull.sub("base").text("ref"),
            merged=pull.flag("merged"), merge_commit_sha=pull.opt_text("merge_commit_sha"),
            changed_paths=_changed_paths(files, f"files of {what}"), reviews=reviews,
            commit_logins=_commit_logins(commits, f"commits of {what}"))

    def pull_requests_for_commit(self, repo: str, sha: str) -> list[int]:
        """The pull requests GitHub associates with commit `sha`, by number, ascending.

        GitHub lists the merged pull request that brought the commit to the default
        branch, or, while the commit is not there, the open and merged ones that contain
        it. An unknown commit is a refusal naming it (GitHub answers 422 or 404).
        """
        what = f"pull requests associated with commit {sha} of {_repo(repo)}"
        pulls = self._items(f"/repos/{repo}/commits/{quote(sha, safe='')}/pulls", what)
        return sorted({_Fields(raw, what).number("number") for raw in pulls})

    def commit_of(self, repo: str, ref: str) -> str:
        """The commit a tag, branch or sha names.

        Raises:
            CodeHostError: GitHub knows no such ref (it answers 422 or 404).
        """
        what = f"the commit of {ref!r} in {_repo(repo)}"
        found = _Fields(self._get(f"/repos/{repo}/commits/{quote(ref, safe='')}", what), what)
        return found.text("sha")

    def required_checks(self, repo: str, branch: str) -> list[str] | None:
        """The contexts and check names branch protection requires, in GitHub's order.

        None when the branch has no protection; [] when it is protected but requires no
        status checks.
        """
        what = f"required status checks of {_repo(repo)}@{branch}"
        path = f"/repos/{repo}/branches/{quote(branch, safe='')}/protection/required_status_checks"
        response = self._request(self._url(path), what, None,
                                 absent=(_NOT_PROTECTED, _NO_STATUS_CHECKS))
        if not response.ok:
            return None if _message(response).lower() == _NOT_PROTECTED else []
        rules = _Fields(self._json(response, what), what)
        names = rules.items("contexts")
        if not all(isinstance(name, str) for name in names):
            raise _garbled(what, "contexts[]", "a string")
        if rules.data.get("checks") is not None:
            names += [_Fields(raw, what, "checks[].").text("context")
                      for raw in rules.items("checks")]
        return list(dict.fromkeys(str(name) for name in names))

    def check_runs(self, repo: str, sha: str) -> list[CheckRun]:
        """The latest run of every check on `sha` (GitHub's `filter=latest`), all pages."""
        what = f"check runs of {_repo(repo)}@{sha}"
        runs = self._items(f"/repos/{repo}/commits/{quote(sha, safe='')}/check-runs", what,
                           {"filter": "latest"}, key="check_runs")
        return [self._check_run(raw, what) for raw in runs]

    def code_scan(self, repo: str, sha: str, ref: str) -> CodeScan:
        """Whether an analysis exists for exactly `sha`, and the open alerts on `ref`."""
        scanning = f"/repos/{_repo(repo)}/code-scanning"
        what = f"code-scanning analyses of {repo}@{sha}"
        analyses = self._items(f"{scanning}/analyses", what, {"sha": sha},
                               absent=(_NO_ANALYSIS,))
        analysed = any(_Fields(raw, what).text("commit_sha") == sha for raw in analyses)
        what = f"code-scanning alerts of {repo} on {ref}"
        alerts = self._items(f"{scanning}/alerts", what, {"ref": ref, "state": "open"},
                             absent=(_NO_ANALYSIS,))
        return CodeScan(analysed=analysed, alerts=[self._alert(raw, what) for raw in alerts])

    def deployments(self, repo: str, environment: str,
                    since: datetime | None = None) -> list[Deployment]:
        """Deployments to `environment`, newest first, each with its latest status.

        Paging stops at the first deployment created before `since`; each deployment
        kept costs one more request, for its latest status.
        """
        what = f"deployments of {_repo(repo)} to {environment}"
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        found: list[Deployment] = []
        for page in self._pages(f"/repos/{repo}/deployments", what,
                                {"environment": environment}):
            for raw in page:
                fields = _Fields(raw, what)
                if since is not None and fields.when("created_at") < since:
                    return found
                found.append(self._deployment(repo, fields))
        return found

    # -- mapping --------------------------------------------------------------------------

    @staticmethod
    def _review(raw: Any, what: str) -> Review:
        review = _Fields(raw, what)
        return Review(reviewer=review.login("user"), state=review.text("state"),
                      commit_sha=review.opt_text("commit_id") or "",
                      submitted_at=review.opt_when("submitted_at"))

    @staticmethod
    def _check_run(raw: Any, what: str) -> CheckRun:
        run = _Fields(raw, what)
        return CheckRun(name=run.text("name"), status=run.text("status"),
                        conclusion=run.opt_text("conclusion"), url=run.opt_text("html_url"))

    @staticmethod
    def _alert(raw: Any, what: str) -> ScanAlert:
        alert = _Fields(raw, what)
        rule = alert.sub("rule")
        instance = alert.opt_sub("most_recent_instance")
        location = instance.opt_sub("location") if instance is not None else None
        return ScanAlert(
            number=alert.number("number"),
            rule_id=rule.opt_text("id") or rule.opt_text("name") or "unknown",
            severity=(rule.opt_text("security_severity_level") or rule.opt_text("severity")
                      or "none"),
            state=alert.text("state"), tool=alert.sub("tool").text("name"),
            path=location.opt_text("path") if location is not None else None,
            url=alert.text("html_url"))

    def _deployment(self, repo: str, fields: _Fields) -> Deployment:
        number = fields.number("id")
        return Deployment(
            id=number, repo=repo, sha=fields.text("sha"), ref=fields.text("ref"),
            environment=fields.text("environment"), creator=fields.login("creator"),
            created_at=fields.when("created_at"), description=fields.opt_text("description"),
            state=self._latest_state(repo, number), url=fields.text("url"))

    def _latest_state(self, repo: str, deployment_id: int) -> str | None:
        what = f"statuses of deployment {deployment_id} of {repo}"
        response = self._request(self._url(f"/repos/{repo}/deployments/{deployment_id}/statuses"),
                                 what, {"per_page": 1})
        statuses = self._json(response, what)
        if not isinstance(statuses, list):
            raise _garbled(what, "the answer", "an array")
        return _Fields(statuses[0], what).text("state") if statuses else None

    # -- HTTP -----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _get(self, path: str, what: str) -> Any:
        return self._json(self._request(self._url(path), what, None), what)

    def _items(self, path: str, what: str, params: dict[str, Any] | None = None,
               key: str | None = None, absent: Collection[str] = ()) -> list[Any]:
        """Every item of a listing, all pages; [] when GitHub answers an `absent` 404."""
        return [item for page in self._pages(path, what, params, key, absent) for item in page]

    def _pages(self, path: str, what: str, params: dict[str, Any] | None = None,
               key: str | None = None, absent: Collection[str] = ()) -> Iterator[list[Any]]:
        """Each page of a listing in turn, following `Link: rel="next"` on this host only."""
        url: str | None = self._url(path)
        query: dict[str, Any] | None = {**(params or {}), "per_page": PER_PAGE}
        seen: set[str] = set()
        while url is not None:
            response = self._request(url, what, query, absent)
            if not response.ok:
                return
            body = self._json(response, what)
            page = _Fields(body, what).items(key) if key else body
            if not isinstance(page, list):
                raise _garbled(what, "the answer", "an array")
            yield page
            seen.add(response.url)
            url, query = response.links.get("next", {}).get("url"), None
            if url is not None and (urlsplit(url)[:2] != self._origin or url in seen):
                raise CodeHostUnavailable(f"GitHub's answer for {what} is garbled: its next "
                                          "page link leaves the API or goes back")

    def _request(self, url: str, what: str, params: dict[str, Any] | None,
                 absent: Collection[str] = ()) -> requests.Response:
        """One GET: its answer if it succeeded or is a 404 saying one of `absent`; else raise."""
        self.requests_made += 1
        try:
            response = self._session.get(url, params=params, timeout=self.timeout_seconds)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise CodeHostUnavailable(f"GitHub did not answer while reading {what}: "
                                      f"{type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise CodeHostError(f"could not ask GitHub for {what}: "
                                f"{type(exc).__name__}") from None
        if response.ok:
            return response
        if response.status_code == 404 and _message(response).lower() in absent:
            return response
        raise self._error(response, what)

    def _json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise CodeHostUnavailable(f"GitHub's answer for {what} is not JSON") from None

    def _error(self, response: requests.Response, what: str) -> CodeHostError:
        """The error for a failed answer, with GitHub's message and the right wait."""
        status, headers = response.status_code, response.headers
        message = self._scrub(_message(response) or response.reason or "no message")
        now = self.clock()
        if status in (403, 429):
            limited = self._rate_limit(status, headers, message, now)
            if limited is not None:
                return limited
        if status >= 500:
            return CodeHostUnavailable(
                f"GitHub answered {status} while reading {what}: {message}",
                retry_after_seconds(headers.get("Retry-After"), now))
        if status == 401:
            return CodeHostError(f"GitHub refused the credentials (401) while reading {what}: "
                                 f"{message}; check the GitHub token")
        if status == 404:
            return CodeHostError(f"GitHub has no {what} (404: {message}); or the token "
                                 "may not see it")
        return CodeHostError(f"GitHub refused {what} ({status}): {message}")

    @staticmethod
    def _rate_limit(status: int, headers: Mapping[str, str], message: str,
                    now: datetime) -> CodeHostUnavailable | None:
        """The wait a rate-limited answer asks for, per GitHub's rules; None if not one."""
        said = f"GitHub's rate limit was hit ({status}): {message}"
        if headers.get("Retry-After"):
            return CodeHostUnavailable(said, retry_after_seconds(headers["Retry-After"], now))
        if headers.get("x-ratelimit-remaining") == "0":
            reset = headers.get("x-ratelimit-reset", "")
            wait = (max(float(reset) - now.timestamp(), 0.0) if reset.isdigit() else None)
            return CodeHostUnavailable(said, wait)
        if status == 429 or "rate limit" in message.lower():
            return CodeHostUnavailable(said, SECONDARY_LIMIT_WAIT)
        return None

    def _scrub(self, text: str) -> str:
        """`text` without the token, whatever a server echoed back."""
        return text.replace(self._auth.token, "[secure]") if self._auth.token else text


def _repo(repo: str) -> str:
    """`repo` if it is "owner/name"; anything else would address another path."""
    if not _REPO.match(repo) or any(part in (".", "..") for part in repo.split("/")):
        raise CodeHostError(f"{repo!r} is not a repository (expected owner/name)")
    return repo


def _commit_logins(commits: list[Any], what: str) -> list[str]:
    """The logins of the commits' authors and committers, where GitHub links an account."""
    logins: list[str] = []
    for n, raw in enumerate(commits):
        fields = _Fields(raw, what, f"[{n}]")
        for role in ("author", "committer"):
            person = fields.opt_sub(role)
            if person is not None:
                logins.append(person.text("login"))
    return list(dict.fromkeys(logins))


def _changed_paths(files: list[Any], what: str) -> list[str]:
    """Each file's path, and a renamed file's old path after it; each path once."""
    paths: list[str] = []
    for raw in files:
        changed = _Fields(raw, what)
        paths.append(changed.text("filename"))
        previous = changed.opt_text("previous_filename")
        if previous is not None:
            paths.append(previous)
    return list(dict.fromkeys(paths))


def _message(response: requests.Response) -> str:
    """GitHub's `message` from an error answer, or "" when it gave none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:500] if message else ""
