"""Scheduled check that the change log still holds (policy section 7), and its anchor.

Daily: the chain is verified (hashes, MACs, times), every change is folded again from
its events and compared with its cached record, and every anchor published before must
still be held by the chain. Only then is the head signed and published as a new anchor.
Anything that does not hold fails the run, naming it: a failed run is what on-call and
the CISO are alerted on.
"""

from __future__ import annotations

from prefect import flow

from integrations.factory import anchor_targets, build
from integrations.ports import ChainBroken
from tasks.anchoring import check_anchors, publish_head
from tasks.records import publish_verification, verify_chain


@flow(name="change-log-verify", log_prints=True)
def change_log_verify() -> dict[str, object]:
    """Verify the chain, its records and its anchors; publish a new anchor; fail if broken."""
    adapters = build()
    anchors = anchor_targets(adapters.settings, adapters.tickets)
    try:
        result = verify_chain(adapters.change_log)
        anchored = check_anchors(adapters.change_log, anchors)
        anchor = publish_head(adapters.change_log, anchors) \
            if result.ok and anchored.problem is None else None
    finally:
        adapters.close()
    publish_verification(result, anchored, anchor)
    if not result.ok:
        raise ChainBroken(result.problem or "; ".join(result.mismatches))
    if anchored.problem is not None:
        raise ChainBroken(anchored.problem)
    assert anchor is not None
    print(f"chain holds: {result.checked} events, head {result.head_hash}; "
          f"{anchored.checked} earlier anchor(s) held; anchored to "
          f"{', '.join(t.where for t in anchors)}")
    return {"events": result.checked, "head_seq": result.head_seq,
            "head_hash": result.head_hash, "anchors_held": anchored.checked,
            "anchored": anchor.line()}
