"""Run `change_request(KEY)` and SIGKILL this process right after one event is appended.

    python -m tests.support.kill_after KEY EVENT_TYPE [FIELD=VALUE ...]

The adapters are built from the `CHANGEFLOW_*` settings in the environment, as a real
run's are. The change log is wrapped so that as soon as an event of EVENT_TYPE (whose
payload has every FIELD=VALUE given) is committed, the process kills itself with
SIGKILL: no cleanup, no `finally`, no flush, exactly as a machine losing the process
would leave it. Exit status 3 means the event never came.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from domain.events import NewEvent
from domain.models import ChangeEvent
from integrations.chain_keys import ChainKeys
from integrations.changelog_sql import SqlChangeLog
from integrations.factory import build, change_log_url, installed


class KillingChangeLog(SqlChangeLog):
    """A change log that SIGKILLs the process right after appending a matching event."""

    def __init__(self, url: str, keys: ChainKeys, retention_years: int, event_type: str,
                 fields: dict[str, str]) -> None:
        super().__init__(url, keys=keys, retention_years=retention_years)
        self.event_type = event_type
        self.fields = fields
        self.actions: dict[str, str] = {}
        """effect id -> action, so that an effect's outcome can be matched by its action."""

    def matches(self, event: ChangeEvent) -> bool:
        """True for the event after which the process dies."""
        if event.type == "effect_started":
            self.actions[event.payload["effect_id"]] = event.payload["action"]
        payload = dict(event.payload)
        if event.type == "effect_finished":
            payload["action"] = self.actions.get(payload["effect_id"])
        return event.type == self.event_type and all(
            str(payload.get(k)) == v for k, v in self.fields.items())

    def append_many(self, new: Sequence[NewEvent]) -> list[ChangeEvent]:
        """Append (committed), then die if one of the events is the chosen one."""
        written = super().append_many(new)
        if [e for e in written if self.matches(e)]:  # every event seen, for `actions`
            os.kill(os.getpid(), signal.SIGKILL)
        return written


def main(argv: Sequence[str]) -> int:
    """Run the change; returns 3 if it ended without reaching the chosen event."""
    key, event_type, *pairs = argv
    fields = dict(pair.split("=", 1) for pair in pairs)
    adapters = build()
    killing = KillingChangeLog(change_log_url(adapters.settings), adapters.change_log.keys,
                               adapters.config.policy.change_log.retention_years,
                               event_type, fields)
    adapters.change_log.close()
    from flows.change_request import change_request

    with installed(adapters.replace(change_log=killing)):
        try:
            change_request(key)
        except Exception as exc:  # noqa: BLE001 - reported, then the distinct status
            print(f"the run ended before {event_type}: {exc}", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
