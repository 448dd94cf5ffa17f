"""Each change's full evidence, from its events: what the evidence pack holds per change.

The evidence of a change is its record (policy section 7's fields) and, read from its
events: the approvals with identities and times, the gate results, the deployments,
the verifications, the rollbacks and incidents, and the whole event trail with hashes.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

DEPLOYMENTS = ("deployment_scheduled", "deployment_started", "deployment_succeeded",
               "deployment_failed", "rollback_started", "rollback_succeeded", "rollback_failed")
VERIFICATIONS = ("verification_passed", "verification_failed")
INCIDENTS = ("incident_opened", "incident_reviewed", "ticket_updated")


def change_evidence(records: pd.DataFrame, events: pd.DataFrame,
                    change_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The evidence of each change in `change_ids`, by change id.

    Args:
        records: `change_id`, `record` (JSON text) per change.
        events: the changes' events (seq, change_id, type, at, actor, payload[, hash]).
        change_ids: which changes.
    """
    wanted = set(change_ids)
    by_id = {cid: json.loads(text) for cid, text in zip(records["change_id"], records["record"],
                                                      strict=True) if cid in wanted}
    trail: dict[str, list[dict[str, Any]]] = {cid: [] for cid in change_ids}
    mine = events[events["change_id"].isin(wanted)]
    hashes = mine["hash"] if "hash" in mine else [None] * len(mine)
    for seq, cid, type_, at, actor, payload, hash_ in zip(
            mine["seq"], mine["change_id"], mine["type"], mine["at"], mine["actor"],
            mine["payload"], hashes, strict=True):
        trail[cid].append({"seq": int(seq), "at": at.isoformat(), "type": type_,
                           "actor": actor, "payload": json.loads(payload), "hash": hash_})
    return {cid: _evidence(by_id.get(cid, {"change_id": cid}), trail[cid]) for cid in change_ids}


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
