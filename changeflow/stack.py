"""The embedded stack: everything a lifecycle needs on one machine, in one folder.

Used by `changeflow demo` and by the flow tests. It copies the configuration and the
example tickets into a working folder, relaxes the schedule so that changes can deploy
at once (windows always open, no peak hours or freezes, no notice: the policy says the
demo may), accepts the tickets' claims for the code-review, CI and SAST gates (there is
no code host; each such result is marked as the ticket's), points the sample service's
catalog entry at its port, starts the sample service, and installs adapters built from
those settings for every flow in the process.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from changeflow.sample_service import SampleService, deploy, start_sample_service
from config.jira import JiraMapping
from config.settings import PROJECT_ROOT, Settings
from domain.host_gates import HOST_GATES
from integrations.chain_keys import ensure_key_file
from integrations.factory import Adapters, build, installed

SAMPLE_PORT = 18765
TRIAL_SOURCES = {gate: ["code_host", "ticket"] for gate in HOST_GATES}
"""A trial without a code host: the ticket's claims for code review, CI and SAST are
accepted, and every such gate result says it came from the ticket."""
ALWAYS_OPEN = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
               "start": "00:00", "end": "23:59:59.999999"}


@dataclass
class Stack:
    """A running embedded stack."""

    root: Path
    settings: Settings
    adapters: Adapters
    service: SampleService

    @property
    def outbox(self) -> Path:
        """Where notices (and one-time codes) go."""
        return self.settings.resolved_outbox_path


def write_config(target: Path, port: int, **policy_changes: Any) -> None:
    """Copy `config/` to `target` for a trial.

    The schedule is always open, the tickets' claims are accepted as gate evidence
    (`TRIAL_SOURCES`), and the sample service is on `port`.
    """
    shutil.copytree(PROJECT_ROOT / "config", target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    policy = yaml.safe_load((target / "policy.yaml").read_text())
    policy["schedule"].update(maintenance_windows=[ALWAYS_OPEN], peak_hours=[], freezes=[],
                              notice_hours=0)
    policy["gates"]["evidence_sources"] = TRIAL_SOURCES
    policy.update(policy_changes)
    (target / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    services = (target / "services.yaml").read_text()
    (target / "services.yaml").write_text(services.replace("127.0.0.1:18765",
                                                           f"127.0.0.1:{port}"))


@contextmanager
def embedded_stack(root: Path, port: int = SAMPLE_PORT, broken: tuple[str, ...] = (),
                   jira_mapping: JiraMapping | None = None, **settings: Any) -> Iterator[Stack]:
    """Set up `root`, start the sample service, install the adapters; undo on exit.

    With `jira_mapping`, it is written as the configuration's `jira.yaml` (the settings
    then say where Jira is: `tickets="jira"`, `jira_url`, `jira_token`, ...).
    """
    root.mkdir(parents=True, exist_ok=True)
    tickets = root / "tickets"
    shutil.copytree(PROJECT_ROOT / "examples" / "tickets", tickets, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".changeflow", "*.md"))
    with start_sample_service(root / "var" / "sample", port, broken) as service:
        write_config(root / "config", service.port)
        if jira_mapping is not None:
            (root / "config" / "jira.yaml").write_text(
                yaml.safe_dump(jira_mapping.model_dump(), sort_keys=False))
        if not {"chain_key", "chain_key_file", "chain_key_block"} & set(settings):
            settings["chain_key_file"] = root / "var" / "chain.key"  # its own key
            ensure_key_file(settings["chain_key_file"])
        env = Settings(config_dir=root / "config", var_dir=root / "var", tickets_dir=tickets,
                       **settings)
        adapters = build(env)
        baseline = adapters.config.services.services["sample"].baseline_version or "1.0.0"
        for environment in ("staging", "production"):
            deploy(root / "var" / "sample", environment, baseline)
        try:
            with installed(adapters):
                yield Stack(root, env, adapters, service)
        finally:
            adapters.close()
