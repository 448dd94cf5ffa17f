"""The composition root: the one place that builds adapters from settings.

With no settings, everything is embedded: SQLite change log under `var/`, tickets from
a local folder, subprocess commands, HTTP checks, and a local outbox for notices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from prefect.settings import get_current_settings
from pydantic import SecretStr

from config.jira import JiraMapping
from config.loader import Config, ConfigError, Problem, load_config
from config.settings import Settings
from integrations.anchors import FileAnchors, TicketAnchors
from integrations.chain_keys import ChainKeyError, ChainKeys, ensure_key_file, read_key_file
from integrations.changelog_schema import migrate, normalize_url, sqlite_engine
from integrations.changelog_sql import SqlChangeLog
from integrations.commands import SubprocessRunner
from integrations.deploy_records import JsonLinesDeployRecords
from integrations.email_notifier import EmailNotifier
from integrations.github_host import GitHubCodeHost
from integrations.http_checks import HttpChecks
from integrations.jira_tickets import JiraChangeTickets
from integrations.local_tickets import LocalChangeTickets
from integrations.outbox import OutboxNotifier
from integrations.ports import (
    Anchors,
    ChangeLog,
    ChangeTickets,
    Checks,
    CodeHost,
    CommandRunner,
    DeployRecords,
    Notifier,
    TeamChannel,
)
from integrations.slack_notifier import SlackNotifier
from integrations.sync_state import SyncState
from integrations.team_channels import BlockChannel, block_name_problem
from integrations.timestamps import TimestampAnchors


class Adapters:
    """Everything a flow talks to, behind its port.

    A plain class, not a dataclass, on purpose: Prefect walks a dataclass passed to a task
    field by field (and everything inside) on every call, looking for futures; a plain
    object is passed as it is.
    """

    def __init__(self, config: Config, change_log: ChangeLog, tickets: ChangeTickets,
                 runner: CommandRunner, checks: Checks, notifiers: Mapping[str, Notifier],
                 settings: Settings | None = None,
                 clock: Callable[[], datetime] | None = None,
                 code_host: CodeHost | None = None,
                 channels: Sequence[TeamChannel] = (),
                 deploy_records: DeployRecords | None = None) -> None:
        """Hold the adapters; `clock` is the one source of time (tests replace it).

        `notifiers` are the personal channels by name (`domain.notices`), in the
        settings' order; `channels` the team channels. `code_host` is None when the gates
        take their evidence from the ticket. `deploy_records` reads the deploy commands'
        own records (JSON-lines files by default).
        """
        self.config = config
        self.change_log = change_log
        self.tickets = tickets
        self.runner = runner
        self.checks = checks
        self.notifiers = dict(notifiers)
        self.channels = list(channels)
        self.settings = settings or Settings()
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.code_host = code_host
        self.deploy_records = deploy_records or JsonLinesDeployRecords()

    def replace(self, **changes: Any) -> Adapters:
        """A copy with some adapters (or the clock) replaced."""
        fields = {name: getattr(self, name) for name in (
            "config", "change_log", "tickets", "runner", "checks", "notifiers", "settings",
            "clock", "code_host", "channels", "deploy_records")}
        return Adapters(**{**fields, **changes})

    def now(self) -> datetime:
        """The current time, from `clock`."""
        return self.clock()

    def close(self) -> None:
        """Release connections."""
        self.change_log.close()
        if isinstance(self.code_host, GitHubCodeHost):
            self.code_host.close()


def change_log_url(settings: Settings, owner: bool = False) -> str:
    """The change log's URL with the password from settings, if one is set.

    With `owner`, the schema owner's URL (`CHANGEFLOW_MIGRATE_DATABASE_URL`), for
    `changeflow migrate` only.
    """
    url = normalize_url(settings.migrate_database_url if owner and settings.migrate_database_url
                        else settings.resolved_database_url)
    password = settings.migrate_database_password if owner and settings.migrate_database_url \
        else settings.database_password
    if password is not None:
        parsed = sa.make_url(url).set(password=password.get_secret_value())
        return parsed.render_as_string(hide_password=False)
    if url.startswith("sqlite:///"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    return url


def chain_keys(settings: Settings) -> ChainKeys:
    """The change log's keys: `CHANGEFLOW_CHAIN_KEY`, its Secret block, or a key file.

    With none of them and a SQLite change log, the key file is `var/chain.key`, made on
    first use: the embedded default, where the key sits beside the database (see
    docs/change-log.md on what that does and does not protect).

    Raises:
        ConfigError: no key is set for a server database, or a key is malformed.
    """
    try:
        if settings.chain_key is not None or settings.chain_key_block:
            secret = secret_setting(settings.chain_key, settings.chain_key_block, "CHAIN_KEY")
            source = ("CHANGEFLOW_CHAIN_KEY" if settings.chain_key is not None
                      else f"Secret block {settings.chain_key_block!r}")
            return ChainKeys.parse(secret.get_secret_value(), source)
        if settings.chain_key_file is not None:
            return read_key_file(settings.chain_key_file)
        if settings.resolved_database_url.startswith("sqlite"):
            return ensure_key_file(settings.var_dir / "chain.key")
    except ChainKeyError as exc:
        raise ConfigError([Problem("settings", "CHANGEFLOW_CHAIN_KEY", str(exc))]) from None
    raise ConfigError([Problem("settings", "CHANGEFLOW_CHAIN_KEY", "not set: a change log on a "
                               "server needs its key from CHANGEFLOW_CHAIN_KEY, "
                               "CHANGEFLOW_CHAIN_KEY_BLOCK or CHANGEFLOW_CHAIN_KEY_FILE, kept "
                               "where the database's users cannot read it")])


def migrate_change_log(settings: Settings, config: Config) -> str | None:
    """Create or update the change log's schema as its owner; grant the flows' role.

    Returns:
        The role granted the flows' rights (PostgreSQL, when the owner's URL names another
        user than `CHANGEFLOW_DATABASE_URL`), or None.
    """
    owner_url = change_log_url(settings, owner=True)
    app_user = sa.make_url(normalize_url(settings.resolved_database_url)).username
    owner_user = sa.make_url(owner_url).username
    app_role = app_user if app_user and app_user != owner_user else None
    engine = (sqlite_engine(owner_url) if owner_url.startswith("sqlite")
              else sa.create_engine(owner_url))
    try:
        with engine.begin() as conn:
            migrate(conn, engine.dialect.name, config.policy.change_log.retention_years,
                    app_role if engine.dialect.name == "postgresql" else None)
    finally:
        engine.dispose()
    return app_role if engine.dialect.name == "postgresql" else None


def open_change_log(settings: Settings, config: Config) -> SqlChangeLog:
    """The change log the settings point at, with its keys and the policy's retention."""
    return SqlChangeLog(change_log_url(settings), keys=chain_keys(settings),
                        retention_years=config.policy.change_log.retention_years)


def secret_setting(value: SecretStr | None, block: str | None, name: str) -> SecretStr:
    """A secret from `CHANGEFLOW_<NAME>`, else from the Secret block `CHANGEFLOW_<NAME>_BLOCK`.

    Raises:
        ConfigError: neither is set.
    """
    if value is not None:
        return value
    if block:
        from prefect.blocks.system import Secret

        loaded: Any = Secret.load(block)  # sync: we are not in a loop
        return SecretStr(str(loaded.get()))
    raise ConfigError([Problem("settings", f"CHANGEFLOW_{name}", f"not set; set it or "
                               f"CHANGEFLOW_{name}_BLOCK (a Prefect Secret block)")])


def jira_token(settings: Settings) -> SecretStr:
    """The Jira token, from the environment or its Secret block."""
    return secret_setting(settings.jira_token, settings.jira_token_block, "JIRA_TOKEN")


def open_code_host(settings: Settings) -> CodeHost | None:
    """The code host the gates and the practices audit read, or None (ticket evidence).

    Raises:
        ConfigError: GitHub is chosen but its token is missing.
    """
    if settings.code_host == "none":
        return None
    token = secret_setting(settings.github_token, settings.github_token_block, "GITHUB_TOKEN")
    return GitHubCodeHost(settings.github_url, token,
                          timeout_seconds=settings.github_timeout_seconds)


def open_tickets(settings: Settings, config: Config) -> ChangeTickets:
    """The change-ticket adapter the settings choose.

    Raises:
        ConfigError: Jira is chosen but its URL or token is missing.
    """
    if settings.tickets == "local":
        return LocalChangeTickets(settings.resolved_tickets_dir)
    if not settings.jira_url:
        raise ConfigError([Problem("settings", "CHANGEFLOW_JIRA_URL",
                                   "not set (needed with CHANGEFLOW_TICKETS=jira)")])
    return JiraChangeTickets(settings.jira_url, config.jira or JiraMapping(), config.roster,
                             jira_token(settings), email=settings.jira_email,
                             timeout_seconds=settings.jira_timeout_seconds)


def open_notifiers(settings: Settings, config: Config) -> dict[str, Notifier]:
    """The personal channels the settings choose (`CHANGEFLOW_NOTIFIERS`), by name, in order.

    Raises:
        ConfigError: a chosen channel lacks a setting it needs (each one is named).
    """
    problems: list[Problem] = []
    notifiers: dict[str, Notifier] = {}
    for name in settings.notifiers:
        need = {"email": ("smtp_host", "smtp_from"), "slack": (), "outbox": ()}[name]
        missing = [Problem("settings", f"CHANGEFLOW_{field.upper()}",
                           f"not set (needed with {name} among CHANGEFLOW_NOTIFIERS)")
                   for field in need if not getattr(settings, field)]
        if name == "slack" and settings.slack_token is None and not settings.slack_token_block:
            missing.append(Problem("settings", "CHANGEFLOW_SLACK_TOKEN",
                                   "not set (needed with slack among CHANGEFLOW_NOTIFIERS); "
                                   "or name a Secret block in CHANGEFLOW_SLACK_TOKEN_BLOCK"))
        if missing:
            problems += missing
            continue
        notifiers[name] = _notifier(name, settings, config)
    if problems:
        raise ConfigError(problems)
    api = get_current_settings().api.url
    host = urlsplit(api).hostname if api else None
    if "outbox" in notifiers and host is not None and host not in LOCAL_HOSTS:
        _warn_outbox(host)
    return notifiers


def _notifier(name: str, settings: Settings, config: Config) -> Notifier:
    if name == "outbox":
        return OutboxNotifier(settings.resolved_outbox_path)
    if name == "slack":
        return SlackNotifier(config.roster, secret_setting(
            settings.slack_token, settings.slack_token_block, "SLACK_TOKEN"),
            base_url=settings.slack_api_url, timeout_seconds=settings.slack_timeout_seconds)
    password = (secret_setting(settings.smtp_password, settings.smtp_password_block,
                               "SMTP_PASSWORD")
                if settings.smtp_password is not None or settings.smtp_password_block
                else None)
    assert settings.smtp_host is not None and settings.smtp_from is not None
    return EmailNotifier(config.roster, settings.smtp_host, settings.smtp_from,
                         port=settings.smtp_port, security=settings.smtp_security,
                         username=settings.smtp_username, password=password,
                         ca_file=settings.smtp_ca_file,
                         timeout_seconds=settings.smtp_timeout_seconds)


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@cache
def _warn_outbox(host: str) -> None:
    """Warn once per process and server that the local outbox serves a Prefect elsewhere."""
    logging.getLogger("changeflow.notify").warning(
        "notices go to the local outbox file while the Prefect server is %s: nobody else "
        "receives their codes there; set CHANGEFLOW_NOTIFIERS (email, slack) for a team",
        host)


def open_team_channels(settings: Settings) -> list[TeamChannel]:
    """The team channels (`CHANGEFLOW_TEAM_CHANNELS`): Prefect notification blocks.

    Raises:
        ConfigError: a name is not a block name.
    """
    problems = [Problem("settings", "CHANGEFLOW_TEAM_CHANNELS", problem)
                for name in settings.team_channels if (problem := block_name_problem(name))]
    if problems:
        raise ConfigError(problems)
    return [BlockChannel(name) for name in settings.team_channels]


def build(settings: Settings | None = None) -> Adapters:
    """Load the configuration and build every adapter the settings choose.

    Raises:
        config.loader.ConfigError: a configuration file is broken.
    """
    settings = settings or Settings()
    config = load_config(settings.config_dir)
    return Adapters(
        config=config,
        change_log=open_change_log(settings, config),
        tickets=open_tickets(settings, config),
        runner=SubprocessRunner(),
        checks=HttpChecks(),
        notifiers=open_notifiers(settings, config),
        channels=open_team_channels(settings),
        settings=settings,
        code_host=open_code_host(settings),
        deploy_records=JsonLinesDeployRecords(),
    )


def anchor_targets(settings: Settings, tickets: ChangeTickets | None) -> list[Anchors]:
    """Where the chain's signed heads are kept: the anchor file, and each configured extra.

    Raises:
        ValueError: an anchor ticket is set but there are no tickets to comment on.
    """
    targets: list[Anchors] = [FileAnchors(settings.resolved_anchor_file)]
    if settings.anchor_ticket:
        if tickets is None:
            raise ValueError("CHANGEFLOW_ANCHOR_TICKET needs the ticket system")
        targets.append(TicketAnchors(tickets, settings.anchor_ticket))
    if settings.anchor_tsa_url and settings.anchor_tsa_ca_file:
        targets.append(TimestampAnchors(settings.stamped_anchor_file, settings.anchor_tsa_url,
                                        settings.anchor_tsa_ca_file))
    return targets


def sync_state(a: Adapters) -> SyncState:
    """The syncs' operational state, kept beside the change log in its database."""
    if not isinstance(a.change_log, SqlChangeLog):
        raise TypeError("the syncs keep their state in the SQL change log's database")
    return SyncState(a.change_log.engine)


_installed: Adapters | None = None


@contextmanager
def installed(adapters: Adapters) -> Iterator[Adapters]:
    """Make every flow in this process use `adapters` (tests, the demo) for the block."""
    global _installed
    previous, _installed = _installed, adapters
    try:
        yield adapters
    finally:
        _installed = previous


@contextmanager
def open_adapters() -> Iterator[Adapters]:
    """The installed adapters, or ones built from settings and closed afterwards."""
    if _installed is not None:
        yield _installed
        return
    adapters = build()
    try:
        yield adapters
    finally:
        adapters.close()
