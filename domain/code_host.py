"""What a code host (GitHub, or another like it) tells the gates about a change.

The models are the code-host port's vocabulary: the pull request behind a change with
its reviews and changed paths, the check runs on a commit, the code-scanning verdict for
a commit, and the deployments that reached an environment. They are plain data, read as
the host gave them; judging them (enough approvals on the final commit, the required
checks green, no open high alert) is the gate rules' work, not theirs.
"""

from __future__ import annotations

from datetime import datetime

from domain.models import Frozen


class Review(Frozen):
    """One submitted review of a pull request.

    Attributes:
        reviewer: the reviewer's login ("ghost" when the account was deleted).
        state: APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED or PENDING.
        commit_sha: the commit the review was given on; "" when the host no longer has
            that commit (a review on a vanished commit is never on the final one).
        submitted_at: when it was submitted; None for a pending review.
    """

    reviewer: str
    state: str
    commit_sha: str
    submitted_at: datetime | None


class PullRequest(Frozen):
    """The pull request behind a change, with every review and every changed path.

    Attributes:
        repo: "owner/name".
        number: the pull request's number in its repository.
        url: the page a person opens (GitHub's `html_url`).
        author: the author's login.
        title: its title.
        head_sha: the final commit: the head of the pull request now.
        base_branch: the branch it merges into.
        merged: whether it has been merged.
        merge_commit_sha: the merge commit, once merged (GitHub also fills it with a
            test merge commit before that).
        changed_paths: every path the pull request touches, in the host's order; a
            renamed file contributes its old path too.
        reviews: every review, oldest first.
        commit_logins: the logins of its commits' authors and committers, in order of
            first appearance (a commit whose e-mail GitHub links to no account adds
            none).
    """

    repo: str
    number: int
    url: str
    author: str
    title: str
    head_sha: str
    base_branch: str
    merged: bool
    merge_commit_sha: str | None
    changed_paths: list[str]
    reviews: list[Review]
    commit_logins: list[str] = []

    @property
    def writers(self) -> list[str]:
        """The logins of who wrote it: its author and its commits' authors and committers."""
        return list(dict.fromkeys([self.author, *self.commit_logins]))


class CheckRun(Frozen):
    """The latest run of one named check on a commit.

    Attributes:
        name: the check's name, as branch protection requires it.
        status: queued, in_progress or completed (also waiting, requested, pending).
        conclusion: once completed: success, failure, neutral, cancelled, skipped,
            timed_out, action_required or stale; None before.
        url: the run's page, when the host gives one.
    """

    name: str
    status: str
    conclusion: str | None
    url: str | None


class ScanAlert(Frozen):
    """One code-scanning alert.

    Attributes:
        number: the alert's number in its repository.
        rule_id: the rule that raised it.
        severity: the security severity (critical, high, medium, low) when the rule has
            one, else the rule's severity (error, warning, note, none).
        state: open, dismissed, fixed or closed.
        tool: the scanning tool's name, e.g. "CodeQL".
        path: the file of its most recent instance, if known.
        url: the alert's page.
    """

    number: int
    rule_id: str
    severity: str
    state: str
    tool: str
    path: str | None
    url: str


class CodeScan(Frozen):
    """Code scanning's verdict for one commit.

    Attributes:
        analysed: at least one code-scanning analysis exists for exactly this commit
            (no analysis means the scan never ran: nothing to trust, not "clean").
        alerts: the open alerts on the scanned ref.
    """

    analysed: bool
    alerts: list[ScanAlert]


class Deployment(Frozen):
    """One deployment to an environment, as the host recorded it.

    Attributes:
        id: the host's id for it.
        repo: "owner/name".
        sha: the commit deployed.
        ref: the ref it was asked for (branch, tag or sha).
        environment: e.g. "production".
        creator: the login of who (or which app) created it.
        created_at: when it was created.
        description: its description, if any.
        state: the state of its latest status (success, failure, error, inactive,
            in_progress, queued, pending), or None when it has no status yet.
        url: the deployment's API address.
    """

    id: int
    repo: str
    sha: str
    ref: str
    environment: str
    creator: str
    created_at: datetime
    description: str | None
    state: str | None
    url: str
