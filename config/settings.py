"""changeflow's settings: one class, read from the environment (prefix `CHANGEFLOW_`).

Secrets are `SecretStr` and are unwrapped only inside an adapter's constructor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Where changeflow finds its configuration and keeps its state.

    With nothing set, everything is embedded: config from `config/`, the change log in a
    SQLite file under `var/`, tickets from a local folder, notices to a local outbox.
    """

    model_config = SettingsConfigDict(env_prefix="CHANGEFLOW_", env_file=".env",
                                      extra="ignore")

    config_dir: Path = Field(default=PROJECT_ROOT / "config",
                             description="Folder holding policy.yaml, roster.yaml, services.yaml")
    var_dir: Path = Field(default=PROJECT_ROOT / "var",
                          description="Folder for local state: SQLite file, outbox, sample service")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the change log; default sqlite under var/")
    database_password: SecretStr | None = Field(
        default=None, description="Password for database_url, kept out of the URL")
    migrate_database_url: str | None = Field(
        default=None, description="URL of the change log as its schema's owner, used only by "
                                  "`changeflow migrate`; default database_url")
    migrate_database_password: SecretStr | None = Field(
        default=None, description="Password for migrate_database_url")
    chain_key: SecretStr | None = Field(
        default=None, description="Change log chain keys, `ID:SECRET`, most recent first, "
                                  "comma-separated (`changeflow log new-key ID` makes one)")
    chain_key_file: Path | None = Field(
        default=None, description="File of chain keys, one `ID:SECRET` a line (mode 600); "
                                  "default var/chain.key with a SQLite change log")
    chain_key_block: str | None = Field(
        default=None, description="Name of a Prefect Secret block holding the chain keys")
    anchor_file: Path | None = Field(
        default=None, description="Append-only file the chain's signed heads are published "
                                  "to; put it where the database's users cannot write. "
                                  "Default var/anchors.jsonl")
    anchor_ticket: str | None = Field(
        default=None, description="Also keep each signed head as a comment on this ticket "
                                  "(e.g. a Jira issue whose comments changeflow's account may "
                                  "add but not edit or delete)")
    anchor_tsa_url: str | None = Field(
        default=None, description="Also have each signed head stamped by this RFC 3161 "
                                  "timestamp authority (kept in <anchor file>.stamped.jsonl)")
    anchor_tsa_ca_file: Path | None = Field(
        default=None, description="The timestamp authority's CA certificate (PEM); required "
                                  "with anchor_tsa_url")
    tickets: Literal["local", "jira"] = Field(default="local",
                                              description="Change-ticket adapter")
    tickets_dir: Path | None = Field(
        default=None, description="Folder of local ticket files; default examples/tickets")
    jira_url: str | None = Field(default=None, description="Jira base URL (Cloud or DC)")
    jira_email: str | None = Field(
        default=None, description="Jira Cloud account e-mail; unset for Data Center")
    jira_token: SecretStr | None = Field(
        default=None, description="Jira Cloud API token or Data Center personal access token")
    jira_token_block: str | None = Field(
        default=None, description="Name of a Prefect Secret block holding the Jira token")
    jira_timeout_seconds: float = Field(default=10, gt=0,
                                        description="Timeout of every Jira request")
    code_host: Literal["none", "github"] = Field(
        default="none", description="Where the code-review, CI and SAST gates read their "
                                    "evidence: the ticket (none) or GitHub")
    github_url: str = Field(default="https://api.github.com",
                            description="GitHub REST API base (GHES: https://HOST/api/v3)")
    github_token: SecretStr | None = Field(
        default=None, description="GitHub token (fine-grained: pull requests, checks, "
                                  "code scanning, deployments: read)")
    github_token_block: str | None = Field(
        default=None, description="Name of a Prefect Secret block holding the GitHub token")
    github_timeout_seconds: float = Field(default=30, gt=0,
                                          description="Timeout of every GitHub request")
    notifiers: Annotated[list[Literal["email", "slack", "outbox"]], NoDecode] = Field(
        default=["outbox"], min_length=1,
        description="Personal channels, comma-separated, tried in this order for each person "
                    "(a roster `channels` list overrides it): email (SMTP), slack (direct "
                    "messages), outbox (a local file)")
    team_channels: Annotated[list[str], NoDecode] = Field(
        default=[], description="Prefect notification blocks (`slack-webhook/ops`, "
                                "`ms-teams-webhook/changes`, `custom-webhook/pager`), "
                                "comma-separated, that group notices also go to; never a code")
    slack_token: SecretStr | None = Field(
        default=None, description="Slack bot token (`xoxb-`, scope chat:write) for direct "
                                  "messages")
    slack_token_block: str | None = Field(
        default=None, description="Name of a Prefect Secret block holding the Slack token")
    slack_api_url: str = Field(default="https://slack.com/api/",
                               description="Slack Web API base URL")
    slack_timeout_seconds: float = Field(default=15, gt=0,
                                         description="Timeout of every Slack request")
    smtp_host: str | None = Field(default=None,
                                  description="SMTP server (with email among the notifiers)")
    smtp_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="SMTP port; default 587 with starttls, 465 with tls, 25 with none")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="STARTTLS after connecting, implicit TLS (SMTPS), or "
                                        "none (only to a relay on the same host)")
    smtp_ca_file: Path | None = Field(
        default=None, description="CA certificate (PEM) the SMTP server's certificate is "
                                  "checked against; default the system's")
    smtp_username: str | None = Field(default=None, description="SMTP login; unset: no login")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password")
    smtp_password_block: str | None = Field(
        default=None, description="Name of a Prefect Secret block holding the SMTP password")
    smtp_from: str | None = Field(default=None,
                                  description="The From address of changeflow's mail")
    smtp_timeout_seconds: float = Field(default=15, gt=0,
                                        description="Timeout of every SMTP connection")
    outbox_path: Path | None = Field(
        default=None, description="Outbox file (JSON lines); default var/outbox.jsonl")

    approval_timeout_hours: float = Field(
        default=72, gt=0, description="How long an approval waits before it expires")
    approval_poll_seconds: float = Field(
        default=5, gt=0, description="How often a waiting run checks for a decision")

    @field_validator("notifiers", "team_channels", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("notifiers")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} is listed more than once")
        return value

    @model_validator(mode="after")
    def _timestamp_authority_complete(self) -> Settings:
        if self.anchor_tsa_url and self.anchor_tsa_ca_file is None:
            raise ValueError("CHANGEFLOW_ANCHOR_TSA_URL is set but CHANGEFLOW_ANCHOR_TSA_CA_FILE "
                             "is not: give the timestamp authority's CA certificate (PEM), "
                             "which its tokens are checked against")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The change log's URL, the SQLite default filled in."""
        return self.database_url or f"sqlite:///{self.var_dir / 'changeflow.db'}"

    @property
    def resolved_anchor_file(self) -> Path:
        """Where anchors go."""
        return self.anchor_file or self.var_dir / "anchors.jsonl"

    @property
    def stamped_anchor_file(self) -> Path:
        """Where the timestamp authority's stamped anchors go."""
        return self.resolved_anchor_file.with_suffix(".stamped.jsonl")

    @property
    def resolved_tickets_dir(self) -> Path:
        """The local tickets folder."""
        return self.tickets_dir or PROJECT_ROOT / "examples" / "tickets"

    @property
    def resolved_outbox_path(self) -> Path:
        """The local outbox file."""
        return self.outbox_path or self.var_dir / "outbox.jsonl"
