"""The quarterly report's shape: a quarter, and the tables an auditor reads.

Every table is a pandas DataFrame with the columns listed on `QuarterlyReport`; the
renderers (HTML, CSV, XLSX, Prefect artifacts) rely on those names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

QUARTER = re.compile(r"^(\d{4})[- ]?Q([1-4])\Z", re.IGNORECASE)


@dataclass(frozen=True)
class Quarter:
    """A calendar quarter, bounded by local midnights in the policy's time zone."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """`2026Q3` (also `2026-Q3`, `2026q3`) as a quarter.

        Raises:
            ValueError: not a quarter, with an example of one.
        """
        match = QUARTER.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a quarter; write it like 2026Q3")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def containing(cls, moment: datetime, zone: ZoneInfo) -> Quarter:
        """The quarter `moment` falls in, in `zone`."""
        local = moment.astimezone(zone)
        return cls(local.year, (local.month - 1) // 3 + 1)

    def previous(self) -> Quarter:
        """The quarter before this one."""
        return Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year,
                                                                          self.number - 1)

    def first_day(self) -> date:
        """The quarter's first calendar day."""
        return date(self.year, 3 * self.number - 2, 1)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) as UTC instants: local midnight of its first day and of the next's."""
        following = Quarter(self.year + 1, 1) if self.number == 4 else Quarter(
            self.year, self.number + 1)
        start = datetime.combine(self.first_day(), time(), zone).astimezone(UTC)
        end = datetime.combine(following.first_day(), time(), zone).astimezone(UTC)
        return start, end

    def months(self) -> list[str]:
        """The quarter's months as `YYYY-MM`."""
        return [f"{self.year}-{m:02d}" for m in range(3 * self.number - 2, 3 * self.number + 1)]

    def __str__(self) -> str:
        return f"{self.year}Q{self.number}"


SECTIONS = ("Inventory", "Controls", "Emergency changes", "Rollbacks and incidents",
            "Prohibited-practice findings", "Delivery metrics", "Change log integrity")
"""The report's section headings, in order (the HTML test looks for each)."""


@dataclass
class QuarterlyReport:
    """Everything the quarterly report says, as tables.

    Attributes:
        quarter: the quarter reported on.
        generated_at: when the report was computed (UTC).
        policy: the policy's id and version, e.g. "SOC2-CHG-001 v1.0".
        changes: one row per change in the quarter (deployed in it, or, never deployed,
            submitted in it). Columns: change_id, category, reclassified_from, service,
            version, summary, author, approvers, submitted_at, deployed_at, month,
            outcome, incidents.
        inventory: tables by name: "by_category_outcome" (rows category, columns
            outcome, counts), "by_service" (service, changes, succeeded, rolled_back,
            failed), "by_month" (rows month, columns category, counts).
        controls: one row per control. Columns: control, requirement, applicable,
            passed, rate (passed / applicable; NaN when nothing applies), exceptions.
        exceptions: one row per control exception. Columns: control, change_id, detail.
        emergencies: one row per emergency change. Columns: change_id, summary, trigger,
            incident_ref, deployed_at, verbal_approver, approver_role, channel,
            recorded_by, fallback_reason, confirmation, documentation, post_hoc_review,
            ciso_signoff, open_items.
        rollbacks: one row per executed rollback. Columns: change_id, rolled_back_at,
            rollback_minutes, estimate_minutes, within_estimate, incident, priority,
            review_due, review_status.
        findings: prohibited-practice findings recorded in the quarter. Columns:
            practice, change_id, detail, found_at, finding_id, service. `findings_note`
            says when no audit ran in the quarter.
        metrics: delivery metrics. Columns: metric, value, unit, definition.
        chain: the change log's verification: ok, checked, head_seq, head_hash,
            problem, quarter_events.
    """

    quarter: Quarter
    generated_at: datetime
    policy: str
    changes: pd.DataFrame
    inventory: dict[str, pd.DataFrame]
    controls: pd.DataFrame
    exceptions: pd.DataFrame
    emergencies: pd.DataFrame
    rollbacks: pd.DataFrame
    findings: pd.DataFrame
    metrics: pd.DataFrame
    chain: dict[str, Any]
    findings_note: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when no change falls in the quarter."""
        return self.changes.empty

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by file-friendly name, in report order (CSV and XLSX use these)."""
        found = {"changes": self.changes}
        found.update({f"inventory_{name}": frame for name, frame in self.inventory.items()})
        found.update({"controls": self.controls, "control_exceptions": self.exceptions,
                      "emergencies": self.emergencies, "rollbacks": self.rollbacks,
                      "findings": self.findings, "metrics": self.metrics})
        return found
