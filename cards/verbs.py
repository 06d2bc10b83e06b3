"""Every Action.Execute verb the cards use, and the keys their data carries, in one place.

A card action carries only the verb and the engagement id, never the facts of a decision: the
handler reloads the engagement and checks the actor and the state itself.
"""

from __future__ import annotations

INTAKE_SUBMIT = "intake.submit"
APPROVE = "engagement.approve"
REJECT = "engagement.reject"
REFRESH = "engagement.refresh"
# --- lifecycle ---
EXTEND_REQUEST = "lifecycle.extend"  # from the end reminder, with the new end date
END_NOW = "lifecycle.end_now"  # asks for confirmation first
LET_IT_END = "lifecycle.let_it_end"
REVOKE_CONFIRM = "lifecycle.revoke_confirm"  # the confirmation of /revoke and of End now
REVOKE_CANCEL = "lifecycle.revoke_cancel"
EXTENSION_APPROVE = "lifecycle.extension_approve"
EXTENSION_REJECT = "lifecycle.extension_reject"
RESEND_INVITATION = "lifecycle.resend_invitation"
# --- administration ---
LIST_PAGE = "admin.page"  # Next / Previous of a paged admin list; data: command, args, page

ALL_VERBS = frozenset(
    {
        INTAKE_SUBMIT,
        APPROVE,
        REJECT,
        REFRESH,
        EXTEND_REQUEST,
        END_NOW,
        LET_IT_END,
        REVOKE_CONFIRM,
        REVOKE_CANCEL,
        EXTENSION_APPROVE,
        EXTENSION_REJECT,
        RESEND_INVITATION,
        LIST_PAGE,
    }
)

ENGAGEMENT_ID = "engagement_id"  # the data key of every engagement action
REJECT_REASON = "reject_reason"  # the input id of the rejection reason
NEW_END_DATE = "new_end_date"  # the input id of the extension's end date
REVOKE_REASON = "revoke_reason"  # the input id of why access is ended early (bot prefills it)
LIST_COMMAND = "command"  # LIST_PAGE: the command that made the list, e.g. "/requests"
LIST_ARGS = "args"  # LIST_PAGE: its arguments without the page number
LIST_PAGE_NUMBER = "page"  # LIST_PAGE: the page to show (1-based)
