"""Every Action.Execute verb the cards use, and the keys their data carries, in one place.

A card action carries only the verb and the engagement id (an intake action at most the draft's
version), never the facts of a decision: the handler reloads the engagement (or the draft) and
checks the actor and the state itself.
"""

from __future__ import annotations

INTAKE_SUBMIT = "intake.submit"  # the form -> the preview (or the form with its errors)
INTAKE_CONFIRM = "intake.confirm"  # the preview -> the engagement; data: the draft's version
INTAKE_EDIT = "intake.edit"  # the preview -> the form again, with the draft's values
INTAKE_SAVE_DRAFT = "intake.save"  # keep the form's values as the requester's draft
INTAKE_DISCARD = "intake.discard"  # drop the draft and show an empty form
APPROVE = "engagement.approve"
REJECT = "engagement.reject"
REFRESH = "engagement.refresh"
# --- approvals ---
REQUEST_CHANGES = "engagement.request_changes"  # the comment is in REJECT_REASON
CANCEL_REQUEST = "engagement.cancel"  # the requester withdraws the request before a decision
DELEGATE = "engagement.delegate"  # the approver hands it on; the person is in DELEGATE_TO
RESUBMIT = "engagement.resubmit"  # the changed request, from the form sent back for changes
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
        INTAKE_CONFIRM,
        INTAKE_EDIT,
        INTAKE_SAVE_DRAFT,
        INTAKE_DISCARD,
        APPROVE,
        REJECT,
        REFRESH,
        REQUEST_CHANGES,
        CANCEL_REQUEST,
        DELEGATE,
        RESUBMIT,
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
REVISION = "revision"  # RESUBMIT: the round of changes the form was sent for
# INTAKE_CONFIRM: the version of the draft the preview showed (a newer draft is not confirmed
# unseen); the values themselves stay in our storage.
DRAFT_VERSION = "draft_version"
# The input id of the approver's reason or comment: Reject and Request changes both read it.
REJECT_REASON = "reject_reason"
DELEGATE_TO = "delegate_to"  # the input id of whom Reassign hands the decision to (e-mail/UPN)
NEW_END_DATE = "new_end_date"  # the input id of the extension's end date
REVOKE_REASON = "revoke_reason"  # the input id of why access is ended early (bot prefills it)
LIST_COMMAND = "command"  # LIST_PAGE: the command that made the list, e.g. "/requests"
LIST_ARGS = "args"  # LIST_PAGE: its arguments without the page number
LIST_PAGE_NUMBER = "page"  # LIST_PAGE: the page to show (1-based)
