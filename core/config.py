"""The program's settings that the domain needs (app.py builds them from the environment)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProgramConfig:
    admin_ids: frozenset[str] = field(default_factory=frozenset)
    default_approver_id: str | None = None
    # Where a guest lands after redeeming the invitation.
    invite_redirect_url: str = "https://teams.microsoft.com"
    # After this many attempts a job gives up and the engagement shows the reason.
    max_attempts: int = 8

    def is_admin(self, aad_id: str) -> bool:
        # Entra object ids are GUIDs; admins paste them in either case.
        return aad_id.lower() in {admin.lower() for admin in self.admin_ids}
