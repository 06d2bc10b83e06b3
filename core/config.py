"""The program's settings that the domain needs (app.py builds them from the environment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ProgramConfig:
    admin_ids: frozenset[str] = field(default_factory=frozenset)
    default_approver_id: str | None = None
    # Where a guest lands after redeeming the invitation.
    invite_redirect_url: str = "https://teams.microsoft.com"
    # After this many attempts a job gives up and the engagement shows the reason.
    max_attempts: int = 8
    # --- lifecycle ---
    # The program's time zone: an engagement ends at midnight after its end date there, and
    # reminders go out at REMINDER_HOUR there.
    time_zone: str = "UTC"
    end_reminder_days: tuple[int, ...] = (7, 1)
    reminder_hour: int = 9
    # Longest engagement, start to (extended) end.
    max_engagement_days: int = 365
    # Offboarding disables the guest account when no other engagement needs it...
    disable_guests: bool = True
    # ...and deletes it this many days later unless re-engaged (0: never delete).
    guest_delete_after_days: int = 30
    # Put in front of an ended engagement's channel name ("" leaves the name alone).
    ended_channel_prefix: str = ""
    # Nudge the requester when the guest has not accepted the invitation after this many days,
    # and again every as many days, at most this often.
    invitation_nudge_days: int = 3
    invitation_nudge_limit: int = 3
    # --- approvals ---
    # Remind whoever decides after this many hours, again as often up to the limit; escalate
    # a first stage to the approver's manager after the escalation hours; expire the request
    # after the expiry hours (counted from when the stage began).
    approval_reminder_hours: float = 24
    approval_reminder_limit: int = 3
    approval_escalation_hours: float = 72
    approval_expiry_hours: float = 168

    def zone(self, time_zone: str | None = None) -> ZoneInfo:
        """`time_zone` (an engagement's, set at intake from the requester's) or the program's."""
        return ZoneInfo(time_zone or self.time_zone)

    def end_instant(self, end_date: date, time_zone: str | None = None) -> datetime:
        """When access ends: the midnight after `end_date` in the engagement's time zone (the
        requester's at intake; the program's for engagements that have none)."""
        return datetime.combine(end_date + timedelta(days=1), time(0), self.zone(time_zone))

    def reminder_instant(
        self, end_date: date, days_before: int, time_zone: str | None = None
    ) -> datetime:
        return datetime.combine(
            end_date - timedelta(days=days_before),
            time(self.reminder_hour),
            self.zone(time_zone),
        )

    def today(self, now: datetime) -> date:
        return now.astimezone(self.zone()).date()
