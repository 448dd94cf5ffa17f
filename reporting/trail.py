"""Each change's full evidence, from its events: what the evidence pack holds per change.

The evidence of a change is its record (policy section 7's fields) and, read from its
events: the approvals with identities and times, the gate results, the deployments,
the verifications, the rollbacks and incidents, and the whole event trail with hashes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pandas as pd

from domain.events import Decided, EventType, GatesJudged

DEPLOYMENTS = (EventType.DEPLOYMENT_SCHEDULED, EventType.DEPLOYMENT_STARTED,
               EventType.DEPLOYMENT_SUCCEEDED, EventType.DEPLOYMENT_FAILED,
               EventType.ROLLBACK_STARTED, EventType.ROLLBACK_SUCCEEDED, EventType.ROLLBACK_FAILED)
VERIFICATIONS = (EventType.VERIFICATION_PASSED, EventType.VERIFICATION_FAILED)
INCIDENTS = (EventType.INCIDENT_OPENED, EventType.INCIDENT_REVIEWED, EventType.TICKET_UPDATED)


class ChangeEvidence(Mapping[str, dict[str, Any]]):
    """Each change's evidence, built when asked for: a quarter's worth never sits in memory.

    Args:
        records: `change_id`, `record` (JSON text) per change.
        events: the changes' events (seq, change_id, type, at, actor, payload[, hash]).
        change_ids: which changes it holds, in order.
    """

    def __init__(self, records: pd.DataFrame, events: pd.DataFrame,
                 change_ids: list[str]) -> None:
        self.ids = list(dict.fromkeys(change_ids))
        wanted = set(self.ids)
        self.records = {cid: text for cid, text in zip(
            records["change_id"].tolist(), records["record"].tolist(), strict=True)
            if cid in wanted}
        mine = events[events["change_id"].isin(wanted)].sort_values(
            ["change_id", "seq"], kind="stable")
        self.columns = {name: mine[name].tolist() for name in (
            "seq", "change_id", "type", "actor", "payload")}
        self.columns["at"] = [t.isoformat() for t in mine["at"].dt.to_pydatetime()] \
            if len(mine) else []
        self.columns["hash"] = mine["hash"].tolist() if "hash" in mine else [None] * len(mine)
        self.spans: dict[str, tuple[int, int]] = {}
        for i, cid in enumerate(self.columns["change_id"]):
            start = self.spans.get(cid, (i, i))[0]
            self.spans[cid] = (start, i + 1)

    def __getitem__(self, change_id: str) -> dict[str, Any]:
        if change_id not in self.records and change_id not in self.spans:
            raise KeyError(change_id)
        record = orjson.loads(self.records[change_id]) if change_id in self.records else {
            "change_id": change_id}
        c = self.columns
        start, end = self.spans.get(change_id, (0, 0))
        trail = [{"seq": int(c["seq"][i]), "at": c["at"][i], "type": c["type"][i],
                  "actor": c["actor"][i], "payload": orjson.loads(c["payload"][i]),
                  "hash": c["hash"][i]} for i in range(start, end)]
        return _evidence(record, trail)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


def change_evidence(records: pd.DataFrame, events: pd.DataFrame,
                    change_ids: list[str]) -> ChangeEvidence:
    """The evidence of each change in `change_ids`, by change id (built on access)."""
    return ChangeEvidence(records, events, change_ids)


def _evidence(record: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    def of(*types: str) -> list[dict[str, Any]]:
        return [{"at": e["at"], "type": e["type"], "actor": e["actor"], **e["payload"]}
                for e in events if e["type"] in types]

    approvals = []
    for e in events:
        if e["type"] == EventType.APPROVAL_RECORDED:
            d = Decided.model_validate(e["payload"])
            approvals.append({"role": d.role, "person_id": d.person_id,
                              "decision": d.decision.value, "at": e["at"], "channel": d.channel,
                              "purpose": d.purpose, "comment": d.comment,
                              "recorded_by": d.recorded_by, "fallback_reason": d.fallback_reason,
                              "recorded_as": e["actor"]})
    gates = [{**g.model_dump(mode="json"), "decided_at": e["at"]} for e in events
             if e["type"] in (EventType.GATES_PASSED, EventType.GATES_BLOCKED)
             for g in GatesJudged.model_validate(e["payload"]).gates]
    return {"record": record, "approvals": approvals, "gates": gates,
            "deployments": of(*DEPLOYMENTS), "verifications": of(*VERIFICATIONS),
            "incidents": of(*INCIDENTS), "events": events}
