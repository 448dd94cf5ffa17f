"""Scheduled check that the change log's hash chain still holds (policy section 7).

Fails the run, naming the first bad event, when it does not: a failed run is what
on-call and the CISO are alerted on.
"""

from __future__ import annotations

from prefect import flow

from integrations.factory import build
from integrations.ports import ChainBroken
from tasks.records import publish_verification, verify_chain


@flow(name="change-log-verify", log_prints=True)
def change_log_verify() -> dict[str, object]:
    """Verify the chain, publish the result, and fail if it is broken."""
    adapters = build()
    try:
        result = verify_chain(adapters.change_log)
    finally:
        adapters.close()
    publish_verification(result)
    if not result.ok:
        raise ChainBroken(result.problem or "the change log's chain is broken")
    print(f"chain holds: {result.checked} events, head {result.head_hash}")
    return {"events": result.checked, "head_seq": result.head_seq,
            "head_hash": result.head_hash}
