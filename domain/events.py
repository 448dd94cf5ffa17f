"""Every event the change log holds, by name: one `StrEnum`, so no event is a bare string.

An event type is the past tense of what happened. `domain.lifecycle` says which of them
move a change's state and from where; the rest are evidence recorded along the way.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """The type of a change-log event."""

    CHANGE_SUBMITTED = "change_submitted"
    CHANGE_RECLASSIFIED = "change_reclassified"
    VALIDATION_FAILED = "validation_failed"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_RECORDED = "approval_recorded"
    APPROVAL_GRANTED = "approval_granted"
    CHANGE_REJECTED = "change_rejected"
    APPROVAL_EXPIRED = "approval_expired"
    STAGING_STARTED = "staging_started"
    STAGING_PASSED = "staging_passed"
    STAGING_FAILED = "staging_failed"
    GATES_PASSED = "gates_passed"
    GATES_BLOCKED = "gates_blocked"
    DEPLOYMENT_SCHEDULED = "deployment_scheduled"
    DEPLOYMENT_STARTED = "deployment_started"
    DEPLOYMENT_SUCCEEDED = "deployment_succeeded"
    DEPLOYMENT_FAILED = "deployment_failed"
    VERIFICATION_PASSED = "verification_passed"
    VERIFICATION_FAILED = "verification_failed"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK_SUCCEEDED = "rollback_succeeded"
    ROLLBACK_FAILED = "rollback_failed"
    CHANGE_CANCELLED = "change_cancelled"
    CHANGE_CLOSED = "change_closed"
    PRACTICE_FINDING = "practice_finding"
    PRACTICES_AUDITED = "practices_audited"
    INTEGRITY_ALARM = "integrity_alarm"
    APPROVAL_ATTEMPT_FAILED = "approval_attempt_failed"
    AVAILABILITY_CONFIRMED = "availability_confirmed"
    CODE_HOST_READ = "code_host_read"
    EFFECT_FINISHED = "effect_finished"
    EFFECT_STARTED = "effect_started"
    ESCALATED = "escalated"
    GATE_BYPASSED = "gate_bypassed"
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_REVIEWED = "incident_reviewed"
    NOTE = "note"
    NOTIFICATION_SENT = "notification_sent"
    OBLIGATION_OPENED = "obligation_opened"
    OBLIGATION_RESPONDED = "obligation_responded"
    PROCEDURE_CHECKED = "procedure_checked"
    REMINDER_SENT = "reminder_sent"
    RUN_STARTED = "run_started"
    SAST_WAIVER_APPLIED = "sast_waiver_applied"
    TICKET_SNAPSHOT = "ticket_snapshot"
    TICKET_UPDATED = "ticket_updated"
