"""Each change's full evidence, from its events: what the evidence pack holds per change.

The evidence of a change is its record (policy section 7's fields) and, read from its
events: the approvals with identities and times, the gate results, the deployments,
the verifications, the rollbacks and incidents, and the whole event trail with hashes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

DEPLOYMENTS = ("deployment_scheduled", "deployment_started", "deployment_succeeded",
               "deployment_failed", "rollback_started", "rollback_succeeded", "rollback_failed")
VERIFICATIONS = ("verification_passed", "verification_failed")
INCIDENTS = ("incident_opened", "incident_reviewed", "ticket_updated")


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
        self.records = {cid: text for cid, text in zip(records["change_id"], records["record"],
                                                       strict=True) if cid in wanted}
        self.events = events[events["change_id"].isin(wanted)].reset_index(drop=True)
        self.rows = self.events.groupby("change_id").indices if len(self.events) else {}

    def __getitem__(self, change_id: str) -> dict[str, Any]:
        if change_id not in self.records and change_id not in self.rows:
            raise KeyError(change_id)
        record = json.loads(self.records[change_id]) if change_id in self.records else {
            "change_id": change_id}
        rows = self.events.iloc[self.rows.get(change_id, [])]
        hashes = rows["hash"] if "hash" in rows else [None] * len(rows)
        trail = [{"seq": int(seq), "at": at.isoformat(), "type": type_, "actor": actor,
                  "payload": json.loads(payload), "hash": hash_}
                 for seq, type_, at, actor, payload, hash_ in zip(
                     rows["seq"], rows["type"], rows["at"], rows["actor"], rows["payload"],
                     hashes, strict=True)]
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

    approvals = [{"role": p.get("role"), "person_id": p.get("person_id"),
                  "decision": p.get("decision"), "at": p["at"], "channel": p.get("channel"),
                  "purpose": p.get("purpose"), "comment": p.get("comment", ""),
                  "recorded_by": p.get("recorded_by"),
                  "fallback_reason": p.get("fallback_reason"), "recorded_as": p["actor"]}
                 for p in of("approval_recorded")]
    gates = [dict(g, decided_at=e["at"]) for e in of("gates_passed", "gates_blocked")
             for g in e.get("gates", [])]
    return {"record": record, "approvals": approvals, "gates": gates,
            "deployments": of(*DEPLOYMENTS), "verifications": of(*VERIFICATIONS),
            "incidents": of(*INCIDENTS), "events": events}
