"""Every user-facing string of the product, in one place (cards, replies, errors)."""

from __future__ import annotations

PRODUCT_NAME = "Freelance Connector"

# --- greeting and help ---------------------------------------------------------------------
WELCOME_TITLE = "Hi, I'm Freelance Connector"
WELCOME_BODY = (
    "I bring freelancers into Teams the governed way: you request, your manager approves, "
    "and I create a private channel and invite the freelancer as a guest."
)
HELP_TITLE = "What I can do"
HELP_FOOTER = "Type a command, for example /request."

# --- commands ------------------------------------------------------------------------------
CMD_REQUEST_HELP = "Request a freelancer: opens the intake form"
CMD_STATUS_HELP = "Your engagements and where they stand"
CMD_HELP_HELP = "The commands you can use"
CMD_PENDING_HELP = "Engagements waiting for a decision (admins)"
NO_IDENTITY = (
    "I can only work with people signed in to Microsoft Teams in your organization, and I "
    "couldn't tell who you are. Nothing was changed."
)
EMPTY_MESSAGE = "(empty message)"
SOMEONE = "someone"
UNNAMED_TEAM = "Team"
UNKNOWN_COMMAND = "I don't know '{text}'. Type /help to see what I can do."
ADMIN_ONLY = "Sorry, {command} is for Freelance Connector admins only. Nothing was changed."
NO_ENGAGEMENTS = "You have no engagements yet. Type /request to start one."
NO_PENDING = "No engagements are waiting for a decision."
STATUS_TITLE = "Your engagements"
PENDING_TITLE = "Waiting for a decision"

# --- intake --------------------------------------------------------------------------------
INTAKE_TITLE = "Request a freelancer"
INTAKE_INTRO = "Your manager approves the request; then I set everything up in Teams."
INTAKE_SUBMIT = "Submit request"
INTAKE_FIX_ERRORS = "Please fix the fields marked below. Nothing was submitted yet."
LABEL_PROJECT_TITLE = "Project title"
LABEL_DESCRIPTION = "What will the freelancer work on?"
LABEL_FREELANCER_NAME = "Freelancer's full name"
LABEL_FREELANCER_EMAIL = "Freelancer's e-mail"
LABEL_START_DATE = "Start date"
LABEL_END_DATE = "End date"
LABEL_TEAM = "Team"
LABEL_CHANNEL_NAME = "Private channel name"
NO_TEAMS = (
    "I'm not installed in any team yet. Ask a team owner to add Freelance Connector to the "
    "team the freelancer will work in, then try /request again."
)

ERR_REQUIRED = "This field is required."
ERR_TOO_LONG = "Use at most {max} characters."
ERR_TOO_SHORT = "Use at least {min} characters."
ERR_EMAIL = "Enter a valid e-mail address, like jane@contoso.com."
ERR_DATE = "Enter a date as YYYY-MM-DD."
ERR_START_PAST = "The start date can't be in the past."
ERR_END_BEFORE_START = "The end date must be after the start date."
ERR_TEAM_UNKNOWN = "Choose one of the teams in the list."
ERR_CHANNEL_TOO_LONG = "Channel names can have at most 50 characters."
ERR_CHANNEL_CHARS = "Channel names can't contain {chars}."
ERR_CHANNEL_CONTROL = "Channel names can't contain control characters."
ERR_CHANNEL_RESERVED = "'{word}' is reserved by Teams and can't be used as a channel name."
ERR_CHANNEL_START = "Channel names can't start with '_' or '.'."
ERR_CHANNEL_IN_USE = "{ref} already uses this channel name in this team. Choose another name."
ERR_CHANNEL_END = "Channel names can't end with '.'."

# --- status and approval -------------------------------------------------------------------
STATE_LABELS = {
    "pending_approval": "Waiting for approval",
    "rejected": "Rejected",
    "provisioning": "Approved, setting up",
    "active": "Active",
    "provisioning_failed": "Set-up failed",
}
SUBMITTED_TITLE = "Request {ref} submitted"
SUBMITTED_BODY = "I'm sending it to your approver now. I'll tell you when they decide."
APPROVAL_TITLE = "Approval needed: {ref}"
APPROVAL_INTRO = "{requester} asks to bring in a freelancer."
APPROVE = "Approve"
REJECT = "Reject"
REJECT_REASON_LABEL = "Reason (required to reject)"
REJECT_REASON_REQUIRED = "Please give a reason for rejecting."
DECIDED_APPROVED = "Approved by {name} on {when}."
DECIDED_REJECTED = "Rejected by {name} on {when}: {reason}"
DECIDED_VERB_APPROVED = "approved"
DECIDED_VERB_REJECTED = "rejected"
REJECT_REASON_TOO_LONG = "Please keep the reason under {max} characters. Nothing was changed."
ALREADY_DECIDED = "Already {state} by {name}. Nothing was changed."
NOT_YOUR_DECISION = "Only {approver} can decide on {ref}. Nothing was changed."
DECISION_BUSY = (
    "{ref} is being updated by someone else right now. Nothing was changed; please try again."
)
NOT_PENDING = "{ref} is not waiting for a decision any more ({state})."
ENGAGEMENT_NOT_FOUND = "I can't find {ref}."
CARD_ACTION_UNKNOWN = "This card is out of date. Type /status to see where things stand."

FACT_REQUESTER = "Requested by"
FACT_APPROVER = "Approver"
FACT_FREELANCER = "Freelancer"
FACT_DATES = "Dates"
FACT_TEAM = "Team"
FACT_CHANNEL = "Channel"
FACT_STATE = "Status"
FACT_REASON = "Reason"

# --- notices (asynchronous) ----------------------------------------------------------------
NOTICE_SENT_FOR_APPROVAL = "{ref} is with {approver} for approval."
NOTICE_APPROVER_NOT_INSTALLED = (
    "{ref} is waiting for {approver}, but Freelance Connector isn't installed in their Teams "
    "yet, so I can't send them the approval card. Ask them to add the app (Apps > Freelance "
    "Connector > Add); they'll get the card as soon as they do."
)
NOTICE_NO_APPROVER = (
    "{ref} has no approver: you have no manager in the directory and no default approver is "
    "configured. Ask your Freelance Connector admin to set DEFAULT_APPROVER."
)
NOTICE_ROUTING_FAILED = (
    "I couldn't send {ref} for approval: {reason} Your Freelance Connector admin can help."
)
NOTICE_APPROVED = "{ref} was approved by {name}. I'm setting it up now."
NOTICE_REJECTED = "{ref} was rejected by {name}. Reason: {reason}"
NOTICE_PROVISIONED = (
    "{ref} is ready: I created the private channel '{channel}' in {team}, invited "
    "{freelancer} as a guest and added them to the team and the channel."
)
NOTICE_PROVISIONED_REUSED = (
    "{ref} is ready: I created the private channel '{channel}' in {team}; {freelancer} "
    "already had a guest account, which I reused, and I added them to the team and the channel."
)
NOTICE_PROVISIONING_FAILED = (
    "Setting up {ref} failed: {reason} Please contact your Freelance Connector admin with "
    "this message."
)

# --- welcome in the new channel ------------------------------------------------------------
WELCOME_CHANNEL_TITLE = "Welcome, {freelancer}"
WELCOME_CHANNEL_BODY = (
    "This private channel is for '{project}', from {start} to {end}. {requester} is your "
    "contact. Access ends automatically at the end date."
)

# --- provisioning failure reasons ----------------------------------------------------------
FAIL_CHANNEL_NAME_TAKEN = (
    "the channel name '{channel}' is already used in {team} (Teams also keeps the names of "
    "deleted channels for 30 days). Submit a new request with another channel name."
)
FAIL_FREELANCER_IS_MEMBER = (
    "{email} belongs to a member of your organization, not to an external freelancer, so no "
    "guest access was set up."
)
FAIL_TEAM_NOT_INSTALLED = (
    "Freelance Connector is no longer installed in the team, so it can't post the welcome."
)
UNEXPECTED_ERROR = "an unexpected error ({kind}) occurred."
DELIVERY_RETRYABLE = "Teams did not accept the message this time ({cause})."
DELIVERY_REFUSED = "Teams refused the message (HTTP {status})."
FAIL_TOO_MANY_ATTEMPTS = "gave up after {attempts} attempts; the last error was: {error}"

# --- cards (added with the cards package) --------------------------------------------------
DATE_RANGE = "{start} to {end}"
FREELANCER_WITH_EMAIL = "{name} ({email})"
CARD_HEADING = "{ref}: {project}"
FACT_PROJECT = "Project"
FACT_DESCRIPTION = "Description"
LIST_ENDS = "Ends {date}"
APPROVAL_WAITING = "Waiting for {approver} to decide."
UNKNOWN_APPROVER = "the approver"
NO_REASON_GIVEN = "no reason given"
REJECT_REASON_PLACEHOLDER = "Tell the requester why, so they can adjust the request."
PLACEHOLDER_PROJECT_TITLE = "For example: Website redesign"
PLACEHOLDER_DESCRIPTION = "Scope, deliverables and why a freelancer is needed"
PLACEHOLDER_FREELANCER_NAME = "For example: Jane Doe"
PLACEHOLDER_FREELANCER_EMAIL = "jane@contoso.com"
PLACEHOLDER_TEAM = "Choose a team"
PLACEHOLDER_CHANNEL_NAME = "Up to 50 characters, for example the project title"
PLACEHOLDER_CHANNEL_SUGGESTION = "Suggestion: {suggestion}"
CARD_ACTION_FAILED = (
    "Something went wrong on my side. Please try again in a minute; if it keeps happening, "
    "tell your Freelance Connector admin."
)

# --- provisioning: admins and /retry ---------------------------------------------------------
NOTICE_PROVISIONING_FAILED_ADMIN = (
    "Setting up {ref} ('{channel}' in {team}, for {freelancer}) failed: {reason} "
    "Fix the cause, then send /retry {ref} to continue from the step that failed."
)
NOTICE_PROVISIONING_RETRIED = "An admin asked me to try setting up {ref} again. I'm on it."
CMD_RETRY_HELP = "Retry a failed set-up from the step that failed (admins)"
CMD_RETRY_USAGE = "/retry FC-12"
RETRY_USAGE = "Tell me which engagement to retry, for example: /retry FC-12"
RETRY_NOT_FAILED = 'There is nothing to retry: {ref} is at "{state}", not "Set-up failed".'
RETRY_QUEUED = "{ref} is queued again; provisioning continues from the step that failed."
JOB_RELEASED = "released at shutdown before it finished; it runs again"
