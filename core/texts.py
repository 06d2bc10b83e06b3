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
CMD_REQUEST_HELP = "Request a freelancer: opens the intake form, filled in with what you give"
CMD_REQUEST_USAGE = "/request [E-MAIL] [PROJECT TITLE]"
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

# --- intake: the complete form (issue 5) ----------------------------------------------------
LABEL_JUSTIFICATION = "Business justification"
LABEL_JUSTIFICATION_OPTIONAL = "Business justification (optional)"
LABEL_FREELANCER_ORG = "Freelancer's organisation (optional)"
LABEL_PROFILE_URL = "Profile link (optional, https)"
LABEL_CLASSIFICATION = "Data the freelancer will see"
LABEL_BUDGET = "Budget (optional)"
LABEL_HOURS = "Hours (optional)"
PLACEHOLDER_JUSTIFICATION = "Why a freelancer, why now, and what it costs not to have one"
PLACEHOLDER_FREELANCER_ORG = "For example: Upwork, or the freelancer's company"
PLACEHOLDER_PROFILE_URL = "https://www.upwork.com/freelancers/..."
PLACEHOLDER_BUDGET = "Amount, for example 12500"
PLACEHOLDER_HOURS = "Whole hours, for example 120"
CLASSIFICATION_LABELS = {
    "public": "Public: nothing sensitive",
    "internal": "Internal: everyday company information",
    "confidential": "Confidential: customer, financial or personal data",
}
INTAKE_DATES_ZONE = "Dates are days in your time zone ({zone})."
INTAKE_SAVE_DRAFT = "Save for later"
INTAKE_DISCARD = "Discard draft"
DRAFT_RESUMED = (
    "I kept your unfinished request from {when}. Carry on below, or type /cancel to drop it."
)
DRAFT_SAVED = (
    "Saved. Type /request any time to carry on where you left off, or /cancel to drop it."
)
DRAFT_DISCARDED = "Your draft was dropped. Here is an empty form."
DRAFT_GONE = (
    "This request was cancelled or already submitted, so there is nothing to confirm. Type "
    "/request to start a new one, or /status to see your requests."
)
CMD_CANCEL_HELP = "Drop your unfinished request (the draft /request offers again)"
CANCEL_DONE = 'Dropped your unfinished request "{title}". Type /request to start a new one.'
CANCEL_UNTITLED = "(untitled)"
CANCEL_NOTHING = "You have no unfinished request. Nothing was changed."
FORM_SENT_TO_CHAT = "I've sent you the form in our 1:1 chat."
FORM_NOT_SENT = (
    "I couldn't open a 1:1 chat with you, and I don't post request forms here, where everyone "
    "can read them. Open a chat with Freelance Connector (Apps > Freelance Connector) and "
    "type /request there."
)

ERR_JUSTIFICATION_REQUIRED = "Your organisation's policy asks for a business justification."
ERR_DOMAIN_BLOCKED = (
    "Freelancers from {domain} can't be invited: your organisation's policy blocks that domain."
)
ERR_DOMAIN_CONSUMER = (
    "{domain} is a personal e-mail service, which your organisation's policy doesn't allow. "
    "Use the freelancer's work address."
)
ERR_DOMAIN_NOT_ALLOWED = (
    "Your organisation's policy only allows freelancers from {domains}, and {domain} isn't one "
    "of them."
)
ERR_PROFILE_URL = "Enter a full web address, like https://www.upwork.com/freelancers/jane."
ERR_PROFILE_URL_HTTPS = "The profile link must start with https://."
ERR_CLASSIFICATION = "Choose public, internal or confidential."
ERR_BUDGET = "Enter an amount like 12500 or 12500.50, without a currency sign."
ERR_HOURS = "Enter whole hours, from 1 to {max}."
ERR_TOO_LONG_ENGAGEMENT = (
    "Your organisation's policy allows engagements of at most {days} days: end on {latest} at "
    "the latest."
)
ERR_CHANNEL_PREFIX_TOO_LONG = (
    'Your organisation puts "{prefix}" in front of channel names, so keep this name to {max} '
    "characters."
)

# --- intake: pre-flight checks and the preview ---------------------------------------------------
ERR_DUPLICATE_ENGAGEMENT = (
    '{name} already has an engagement in {team}: {ref} "{title}" ({state}). Extend that one '
    "instead, or choose another team."
)
ERR_FREELANCER_IS_MEMBER = (
    "{email} belongs to someone in your own organisation, not to an outside freelancer."
)
ERR_NOT_TEAM_MEMBER = (
    "You're not a member of {team}, and you must be one to own the freelancer's channel. Ask a "
    "team owner to add you, or choose another team."
)
ERR_PRIVATE_CHANNEL_LIMIT = (
    "{team} has reached Teams' limit of {limit} private channels (deleted ones count for 30 "
    "days). Choose another team, or ask a team owner to remove unused private channels."
)
ERR_CHANNEL_TAKEN_SUGGEST = '{team} already has a channel named "{name}". "{suggestion}" is free.'
ERR_CHANNEL_TAKEN = '{team} already has a channel named "{name}". Choose another name.'
PREFLIGHT_UNAVAILABLE = (
    "I couldn't check your request with Microsoft 365 just now. Your form is kept: try Submit "
    "again in a minute."
)
PREFLIGHT_GUEST_EXISTS = (
    "{name} already has a guest account in your organisation: I'll reuse it, so no new "
    "invitation is needed."
)
PREFLIGHT_GUEST_DISABLED = (
    "{name} has a guest account in your organisation that is switched off: I'll reuse it and "
    "switch it back on once the request is approved."
)
PREVIEW_TITLE = "Check your request"
PREVIEW_INTRO = "Nothing is sent yet. Confirm to send it for approval, or Edit to change it."
PREVIEW_CONFIRM = "Confirm and send"
PREVIEW_EDIT = "Edit"
PREVIEW_OUT_OF_DATE = (
    "You changed this request after this preview was made. Here is the latest version: "
    "check it and confirm again."
)
FACT_JUSTIFICATION = "Justification"
FACT_FREELANCER_ORG = "Organisation"
FACT_PROFILE_URL = "Profile"
FACT_CLASSIFICATION = "Data"
FACT_BUDGET = "Budget"
FACT_HOURS = "Hours"
FACT_ACCESS_ENDS = "Access ends"
ACCESS_ENDS_AT = "{local} ({zone}), {utc} UTC"

# --- tenant policy (/policy) --------------------------------------------------------------------
CMD_POLICY_HELP = "Show the intake policy, or change one key of it (admins)"
CMD_POLICY_USAGE = "/policy [set KEY VALUE | reset KEY]"
POLICY_TITLE = "Intake policy"
POLICY_INTRO = (
    "Changes apply to the next request submitted. Change a key with /policy set KEY VALUE."
)
POLICY_SET_DONE = "{key} is now {value}. It applies from the next request submitted."
POLICY_RESET_DONE = "{key} is back to the default: {value}."
POLICY_SOURCE_DEFAULT = "default"
POLICY_SOURCE_SET = "set by {name} on {date}"
POLICY_ANY_DOMAIN = "any domain"
POLICY_NONE = "none"
POLICY_ON = "on"
POLICY_OFF = "off"
POLICY_DAYS = "{days} days"
POLICY_KEY_HELP = {
    "allowed_domains": "Only freelancers from these domains (and their subdomains); none: any",
    "blocked_domains": "Never freelancers from these domains; blocked wins over allowed",
    "block_consumer_domains": "Refuse personal e-mail services such as gmail.com (on/off)",
    "max_engagement_days": "Longest engagement, start to end, in days",
    "channel_prefix": "Put in front of every new channel name (quote it to keep spaces)",
    "justification_required": "Whether the business justification must be filled in (on/off)",
    "default_approver": "Who approves when the requester has no manager (e-mail or UPN)",
    "second_stage_group": "Entra group (object id) whose members approve in a second stage",
    "second_stage_days": "Second stage also for engagements longer than this; none: only "
    "confidential data",
}
POLICY_UNKNOWN_KEY = 'There is no policy key "{key}". The keys are: {keys}.'
POLICY_VALUE_MISSING = "Give a value: /policy set {key} VALUE."
POLICY_BAD_DOMAIN = '"{word}" is not a domain name like contoso.com. Nothing was changed.'
POLICY_DOMAINS_EMPTY = "Give one or more domains, or none. Nothing was changed."
POLICY_TOO_MANY_DOMAINS = "At most {max} domains fit in one list. Nothing was changed."
POLICY_BAD_SWITCH = "Use on or off. Nothing was changed."
POLICY_BAD_DAYS = "Give a whole number of days from 1 to {max}. Nothing was changed."
POLICY_PREFIX_TOO_LONG = "A channel prefix can have at most {max} characters. Nothing was changed."
POLICY_BAD_PREFIX = "That prefix can't start a channel name: {problem} Nothing was changed."
POLICY_BAD_GROUP = (
    '"{word}" is not an Entra group object id (like 6f1c...-...). Nothing was changed.'
)
POLICY_CONFIDENTIAL_ONLY = "confidential data only"
POLICY_APPROVER_UNKNOWN = "I found nobody called {who} in your directory. Nothing was changed."
POLICY_APPROVER_GUEST = (
    "{who} is a guest in your directory; approvers must be members. Nothing was changed."
)
POLICY_APPROVER_DISABLED = "{who}'s account is switched off. Nothing was changed."
POLICY_APPROVER_UNAVAILABLE = (
    "I couldn't look the approver up in Microsoft 365 just now. Nothing was changed: try again "
    "in a minute."
)

# --- status and approval -------------------------------------------------------------------
STATE_LABELS = {
    "pending_approval": "Waiting for approval",
    "rejected": "Rejected",
    "provisioning": "Approved, setting up",
    "active": "Active",
    "provisioning_failed": "Set-up failed",
    "offboarding": "Ending, removing access",
    "offboarding_failed": "Removing access failed",
    "ended": "Ended",
    "changes_requested": "Sent back for changes",
    "cancelled": "Cancelled",
    "expired": "Expired without a decision",
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
# --- approvals (issue 4) ---
REQUEST_CHANGES = "Request changes"
CANCEL_REQUEST = "Cancel request"
DELEGATE = "Reassign"
DECISION_COMMENT_LABEL = "Reason or comment (required to reject or request changes)"
DELEGATE_TO_LABEL = "Reassign to (e-mail)"
DELEGATE_TO_PLACEHOLDER = "colleague@contoso.com"
DECIDED_VERB_CANCELLED = "cancelled"
DECISION_TEXT_TOO_LONG = "Please keep it under {max} characters. Nothing was changed."
CHANGES_COMMENT_REQUIRED = "Please say what should change."
CANCEL_NOT_YOURS = "Only the requester can cancel {ref}. Nothing was changed."
NO_SELF_APPROVAL = "You asked for {ref}, so you can't decide on it. Nothing was changed."
DELEGATE_STAGE_TWO = (
    "{ref} waits for its second stage, which any member of the group may decide: there is no "
    "one to reassign it from. Nothing was changed."
)
STAGE_ONE_DONE = (
    "You approved the first stage of {ref}; the second stage is for the review group. Nothing "
    "was changed."
)
NOT_IN_STAGE_GROUP = (
    "{ref} waits for its second stage, which only members of the review group can decide. "
    "Nothing was changed."
)
STAGE_CHECK_UNAVAILABLE = (
    "I couldn't check with Microsoft 365 who may decide just now. Nothing was changed: try "
    "again in a minute."
)
DELEGATE_WHO_REQUIRED = "Enter the e-mail address of the person to reassign it to."
DELEGATE_LOOKUP_UNAVAILABLE = (
    "I couldn't look that person up in Microsoft 365 just now. Nothing was changed: try again "
    "in a minute."
)
DELEGATE_UNKNOWN = "I found nobody called {who} in your directory. Nothing was changed."
DELEGATE_GUEST = (
    "{who} is a guest in your directory; approvers must be members. Nothing was changed."
)
DELEGATE_DISABLED = "{who}'s account is switched off. Nothing was changed."
DELEGATE_TO_REQUESTER = "The requester can't approve {ref} themselves. Nothing was changed."
DELEGATE_TO_SELF = "That's you: it is already yours to decide. Nothing was changed."
DELEGATED_TO = "Reassigned to {name}. I've sent them the card."
RESUBMIT_NOT_YOURS = "Only the requester can change {ref}. Nothing was changed."
RESUBMITTED = "{ref} is changed and back with {approver} for approval."
RESUBMIT_OLD_FORM = (
    "This form is from an earlier round of changes to {ref}. Use the newest one. Nothing was "
    "changed."
)
CHANGES_TITLE = "Change your request {ref}"
CHANGES_NOTICE = '{name} asked for changes: "{comment}". Edit the request and send it again.'
CHANGES_SUBMIT = "Send changed request"
STAGE_LABEL = "Stage {stage} of {stages}"
STAGE_TWO_APPROVER = "the review group"
CANCELLED_BY = "Cancelled by {name} on {when}."
EXPIRED_ON = "Expired on {when}: nobody decided in time."
CHANGES_REQUESTED_BY = "{name} asked for changes: {comment}"
SUMMARY_TITLE = "Request {ref}"
NOTICE_CANCELLED = "{requester} cancelled {ref}. Nothing is waiting for you."
NOTICE_EXPIRED = (
    "{ref} expired: nobody decided in time. Request it again with /request if still needed."
)
NOTICE_APPROVAL_REMINDER = "{ref} from {requester} is still waiting for your decision."
NOTICE_ESCALATED = "{ref} waited too long and went to {detail} for a decision."
NOTICE_DELEGATED = "{ref} was reassigned to {detail} for approval."
NOTICE_STAGE_APPROVED = (
    "{ref} passed its first approval; it now needs the review group's (second stage)."
)
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

# --- lifecycle: messages of the use cases (cards have their own section below) ----------------
CMD_REVOKE_HELP = "End an engagement now and remove the freelancer's access (requester or admin)"
CMD_REVOKE_USAGE = "/revoke FC-12 REASON"
REVOKE_USAGE = (
    "Tell me which engagement to end and why, for example: /revoke FC-12 Contract cancelled"
)
REVOKE_REASON_TOO_LONG = "Please keep the reason under {max} characters. Nothing was changed."
NOT_YOURS_TO_END = (
    "Only the requester of {ref} or a Freelance Connector admin can end it. Nothing was changed."
)
CANNOT_END_IN_STATE = 'There is nothing to end: {ref} is at "{state}".'
CANNOT_END_WHILE_PROVISIONING = (
    "{ref} is still being set up. Wait until it is active (or failed), then end it."
)
ENDING_STARTED = (
    "Ending {ref}: I'm removing {freelancer}'s access now and will tell you when it's done."
)
REVOKE_KEPT = "Nothing was changed: {ref} stays active until {end}."
END_NOW_REASON = "ended early by the requester"
END_DATE_REACHED = "the end date was reached"
LET_IT_END_RECORDED = (
    "OK: {ref} ends on {end} as planned. I'll remove the access then and won't remind you again."
)
ONLY_REQUESTER = "Only {requester}, who requested {ref}, can do this. Nothing was changed."
NOT_ACTIVE = '{ref} is not active any more ("{state}"). Nothing was changed.'
EXTENSION_DATE_REQUIRED = "Choose the new end date (YYYY-MM-DD)."
EXTENSION_NOT_LATER = "The new end date must be after the current one ({end})."
EXTENSION_TOO_LONG = (
    "Engagements can last at most {days} days, so the latest possible end date is {latest}."
)
EXTENSION_PAST = "The new end date can't be in the past."
EXTENSION_ALREADY_PENDING = (
    "An extension of {ref} to {date} is already waiting for {approver}. Nothing was changed."
)
EXTENSION_REQUESTED = (
    "I've asked {approver} to approve extending {ref} to {date}. Access continues until "
    "{end} in the meantime."
)
EXTENSION_NO_APPROVER = (
    "{ref} has no approver on record, so I can't ask for an extension. Ask your Freelance "
    "Connector admin."
)
EXTENSION_NOT_PENDING = "There is no extension of {ref} waiting for a decision."
EXTENSION_NOT_YOUR_DECISION = "Only {approver} can decide on extending {ref}. Nothing was changed."
EXTENSION_APPROVED_REPLY = "Extended: {ref} now ends on {end}. I've told {requester}."
EXTENSION_REJECTED_REPLY = "Extension of {ref} rejected. I've told {requester}."
RESEND_QUEUED = "I'm sending {freelancer} a new invitation e-mail for {ref}."
RESEND_NOT_PENDING = (
    "{freelancer} has accepted the invitation already; there is nothing to resend."
)

NOTICE_ENDED = (
    "{ref} has ended ({reason}). {freelancer} no longer has access to '{channel}' in {team}."
)
NOTICE_OFFBOARDING_FAILED = (
    "Removing {freelancer}'s access for {ref} failed: {reason} Your Freelance Connector admin "
    "has been told."
)
NOTICE_OFFBOARDING_FAILED_ADMIN = (
    "Ending {ref} ('{channel}' in {team}, for {freelancer}) failed: {reason} "
    "Fix the cause, then send /retry {ref} to continue from the step that failed."
)
NOTICE_EXTENDED = "{approver} approved the extension: {ref} now ends on {end}."
NOTICE_EXTENDED_BY_ADMIN = "{admin}, a Freelance Connector admin, moved the end of {ref} to {end}."
NOTICE_EXTENSION_REJECTED = (
    "{approver} did not approve extending {ref}: {reason} It still ends on {end}."
)
NOTICE_INVITATION_RESENT = "I sent {freelancer} a new invitation e-mail for {ref}."
RETRY_NOT_FAILED_ANY = (
    'There is nothing to retry: {ref} is at "{state}", not "Set-up failed" or '
    '"Removing access failed".'
)
RETRY_OFFBOARDING_QUEUED = "{ref} is queued again; removing access continues where it stopped."

# --- lifecycle cards --------------------------------------------------------------------------
FACT_SPONSOR = "Sponsor"
FACT_ENDED = "Ended"
FACT_CURRENT_END = "Current end"
FACT_REQUESTED_END = "Requested end"
ENDED_BY = "by {name}"
ENDED_VALUE = "{when}: {reason}"
LIFECYCLE_STATUS = 'Nothing to do here any more: {ref} is at "{state}".'
DAYS_AGO_TODAY = "today"
DAYS_AGO_ONE = "1 day ago"
DAYS_AGO_MANY = "{days} days ago"
# The end reminder, to the requester.
REMINDER_TITLE_DAYS = "{ref} ends in {days} days, on {date}"
REMINDER_TITLE_TOMORROW = "{ref} ends tomorrow, {date}"
REMINDER_TITLE_TODAY = "{ref} ends today, {date}"
REMINDER_TITLE_PAST = "{ref} was due to end on {date}"
REMINDER_BODY = (
    "Then I remove {freelancer}'s access to '{channel}' in {team}. Extend it if the work goes "
    "on, end it now if it is done, or let it end as planned."
)
REMINDER_EXTENSION_WAITING = (
    "You asked to extend it to {date}; that is waiting for {approver}. Access continues until "
    "{end} in the meantime."
)
REMINDER_LETTING_END = "It ends as planned on {end}; I'll remove the access then."
EXTEND_BUTTON = "Extend…"
EXTEND_SUBMIT = "Ask for the extension"
NEW_END_DATE_LABEL = "New end date"
NEW_END_DATE_ERROR = "Choose a new end date after {end}."
END_NOW_BUTTON = "End now"
LET_IT_END_BUTTON = "Let it end"
# The confirmation of /revoke and of End now.
REVOKE_CONFIRM_TITLE = "End {ref} now?"
REVOKE_CONFIRM_BODY = (
    "I'll remove {freelancer} from the channel '{channel}' right away, and also from {team} "
    "with their guest account disabled, unless another engagement still needs them. I'll tell "
    "you and {approver} when it's done."
)
REVOKE_REASON_LABEL = "Reason (kept in the audit log and shown in the channel's closing note)"
REVOKE_REASON_ERROR = "Please give a reason for ending it early."
REVOKE_CONFIRM_BUTTON = "Confirm"
REVOKE_CANCEL_BUTTON = "Keep it"
# The extension request, to the approver.
EXTENSION_APPROVAL_TITLE = "{requester} asks to extend {ref} to {date}"
EXTENSION_TITLE = "Extension of {ref}"
EXTENSION_APPROVAL_INTRO = (
    "If you approve, {freelancer} keeps access to '{channel}' in {team} until the new end date."
)
EXTENSION_NONE_WAITING = "No extension is waiting for a decision; {ref} ends on {end}."
EXTENSION_APPROVE_BUTTON = "Approve extension"
EXTENSION_REJECT_BUTTON = "Reject…"
EXTENSION_REJECT_SUBMIT = "Reject extension"
EXTENSION_REJECT_LABEL = "Reason (required; the requester sees it)"
EXTENSION_REJECT_ERROR = "Please give a reason for rejecting the extension."
# The nudge about an invitation the freelancer has not accepted.
NUDGE_TITLE = "{ref}: invitation not accepted yet"
NUDGE_BODY = (
    "{freelancer} hasn't accepted the invitation for {ref} yet (sent {ago}); they won't see "
    "the channel until they do."
)
NUDGE_HINT = (
    "Ask them to look for the e-mail from Microsoft Invitations (invites@microsoft.com) sent "
    "to {email}, also in their spam or junk folder."
)
RESEND_INVITATION_BUTTON = "Resend invitation"
# The closing note in the engagement's channel.
CLOSING_TITLE = "{ref} has ended"
CLOSING_ENDED_BY = "{name} ended it on {when}: {reason}"
CLOSING_ENDED_BY_UNDATED = "{name} ended it: {reason}"
CLOSING_ENDED_ON = "It ended on {when}: {reason}"
CLOSING_ACCESS_REMOVED = "{freelancer}'s access to this channel has been removed."
CLOSING_CHANNEL_KEPT = "The channel stays for the team's records."

# --- administration ---------------------------------------------------------------------------
UNKNOWN_COMMAND_SUGGEST = "I don't know '{text}'. Did you mean {suggestion}? Type /help for more."
COMMAND_USAGE = "Usage: {usage}\n{description}"
COMMAND_PERSONAL_ONLY = (
    "{command} shows program data, so it only works in our 1:1 chat. Open a chat with "
    "Freelance Connector and send it there. Nothing was shown here."
)
ADMIN_CHECK_UNAVAILABLE = (
    "I couldn't check your admin rights with Microsoft Graph just now. Please try again in a "
    "minute. Nothing was changed."
)
CMD_REQUESTS_HELP = "All requests, newest first, optionally of one state (admins)"
CMD_REQUESTS_USAGE = "/requests [STATE] [PAGE]"
CMD_ACTIVE_HELP = "Active engagements, optionally of one team (admins)"
CMD_ACTIVE_USAGE = "/active [TEAM]"
CMD_EXPIRING_HELP = "Active engagements ending within DAYS days (30 if not given) (admins)"
CMD_EXPIRING_USAGE = "/expiring [DAYS]"
CMD_SHOW_HELP = "One engagement: its details and timeline (requester, approver or admin)"
CMD_SHOW_USAGE = "/show FC-12"
CMD_EXTEND_HELP = "Move an active engagement's end date to a later date (admins)"
CMD_EXTEND_USAGE = "/extend FC-12 YYYY-MM-DD"
CMD_AUDIT_HELP = "The audit log: of one engagement, or the last N records (admins)"
CMD_AUDIT_USAGE = "/audit [FC-12 | last N]"
CMD_REPORT_HELP = "The program's KPIs (admins)"
CMD_EXPORT_HELP = "Download engagements and the audit log as CSV files (admins)"
CMD_EXPORT_USAGE = "/export [engagements | audit]"
REQUESTS_STATE_UNKNOWN = "'{state}' is not a state I know. Use one of: {states}."
PAGE_INVALID = "Pages are numbered from 1 to {max}."
EXPIRING_DAYS_INVALID = "Give the number of days as a whole number from 0 to {max}."
AUDIT_LAST_INVALID = "I can show the last 1 to {max} audit records."
TEAM_UNKNOWN = "I don't know a team called '{team}'. Teams I'm installed in: {teams}."
TEAM_AMBIGUOUS = "Several teams match '{team}': {teams}. Give the full name."
NO_TEAMS_KNOWN = "none yet"
EXTENDED_BY_ADMIN_REPLY = "{ref} now ends on {end} (was {previous}). I told {requester}."
EXPORT_NOT_CONFIGURED = (
    "Exports are not set up: the deployer must set PUBLIC_BASE_URL (the address Teams reaches "
    "the bot at) so I can give you a download link."
)
EXPORT_LINK_INVALID = "This export link is not valid. Send /export again for a new one."
EXPORT_LINK_EXPIRED = "This export link has expired. Send /export again for a new one."
EXPORT_FORBIDDEN = "This export link belongs to someone who is no longer an admin."

# Card texts of the admin commands.
REQUESTS_TITLE = "Requests"
REQUESTS_TITLE_STATE = "Requests: {states}"
ACTIVE_TITLE = "Active engagements"
ACTIVE_TITLE_TEAM = "Active engagements in {team}"
EXPIRING_TITLE = "Ending within {days} days"
LIST_EMPTY = "Nothing to show."
LIST_PAGE = "Page {page}"
LIST_NEXT = "Next"
LIST_PREVIOUS = "Previous"
AUDIT_TITLE = "Audit log: last {last}"
AUDIT_TITLE_ENGAGEMENT = "Audit log: {ref}"
AUDIT_EMPTY = "No audit records."
AUDIT_REFUSED = "refused"
AUDIT_FAILED = "failed"
TIMELINE_TITLE = "Timeline"
TIMELINE_EARLIER = "{count} earlier records are not shown: /audit {ref} lists them all."
REPORT_TITLE = "Freelance program report"
REPORT_GENERATED = "As of {at} UTC. Times and rates cover the last {days} days."
REPORT_BY_STATE = "Engagements by state"
REPORT_TOTAL = "Total"
REPORT_MEDIAN_DECISION = "Median time from request to decision"
REPORT_MEDIAN_PROVISIONED = "Median time from approval to access ready"
REPORT_REJECTION_RATE = "Rejection rate"
REPORT_RATE_VALUE = "{percent} ({rejected} of {decided})"
REPORT_ENDING = "Ending in the next {days} days"
REPORT_WAITING = "Requests waiting more than {hours} hours"
REPORT_ACTIVE_BY_TEAM = "Active freelancers by team"
REPORT_NO_DATA = "no data yet"
REPORT_NONE_ACTIVE = "No active freelancers."
EXPORT_TITLE = "Export"
EXPORT_BODY = (
    "Your CSV files are ready. The links work for you only, until {expires} UTC; after that, "
    "send /export again."
)
EXPORT_ENGAGEMENTS = "Download engagements (CSV)"
EXPORT_AUDIT = "Download the audit log (CSV)"

# --- admin cards -------------------------------------------------------------------------------
# A row of an admin list: when an active engagement ends, and who and where.
ROW_PEOPLE = "{freelancer} · {team}"
ROW_ENDS_IN_DAYS = "Ends in {days} days, on {date}"
ROW_ENDS_TOMORROW = "Ends tomorrow, {date}"
ROW_ENDS_TODAY = "Ends today, {date}"
ROW_ENDS_OVERDUE = "Was due to end {date}"
# An audit record: when, (which engagement,) who; its action marked when refused or failed.
AUDIT_ROW_META = "{time} · {actor}"
AUDIT_ROW_META_REF = "{time} · {ref} · {actor}"
AUDIT_ROW_OUTCOME = "{action}: {outcome}"
# An audit record's action: its label, else the raw action name; "command.X" reads "/X command".
AUDIT_COMMAND_LABEL = "/{command} command"
AUDIT_ACTION_LABELS = {
    "engagement.submitted": "Request submitted",
    "engagement.approved": "Request approved",
    "engagement.rejected": "Request rejected",
    "engagement.decision_refused": "Decision refused",
    "engagement.view_refused": "Viewing refused",
    "approval.routed": "Approver found",
    "approval.card_sent": "Approval card sent",
    "approval.card_undeliverable": "Approval card undeliverable",
    "approval.routing_failed": "Finding the approver failed",
    "graph.channel_created": "Channel created",
    "graph.channel_found": "Existing channel used",
    "graph.guest_invited": "Guest invited",
    "graph.guest_reused": "Existing guest used",
    "graph.team_member_added": "Added to the team",
    "graph.channel_member_added": "Added to the channel",
    "teams.welcome_posted": "Welcome posted",
    "provisioning.completed": "Set-up completed",
    "provisioning.failed": "Set-up failed",
    "provisioning.retried": "Set-up retried",
    "notice.undeliverable": "Notice undeliverable",
    "graph.guest_reenabled": "Guest account re-enabled",
    "graph.sponsor_added": "Sponsor recorded",
    "lifecycle.end_reminder_sent": "End reminder sent",
    "lifecycle.let_it_end": "Chose to let it end",
    "lifecycle.extension_requested": "Extension requested",
    "lifecycle.extension_card_sent": "Extension card sent",
    "lifecycle.extension_approved": "Extension approved",
    "lifecycle.extension_rejected": "Extension rejected",
    "lifecycle.extension_dropped": "Extension dropped",
    "lifecycle.refused": "Lifecycle action refused",
    "offboarding.started": "Removing access started",
    "offboarding.completed": "Access removed",
    "offboarding.failed": "Removing access failed",
    "offboarding.retried": "Removing access retried",
    "graph.channel_member_removed": "Removed from the channel",
    "graph.team_member_removed": "Removed from the team",
    "graph.team_member_kept": "Kept in the team",
    "graph.guest_disabled": "Guest account disabled",
    "graph.guest_kept": "Guest account kept",
    "graph.guest_deleted": "Guest account deleted",
    "graph.channel_renamed": "Channel renamed",
    "teams.closing_note_posted": "Closing note posted",
    "lifecycle.invitation_pending": "Invitation not accepted yet",
    "lifecycle.invitation_accepted": "Invitation accepted",
    "graph.invitation_resent": "Invitation resent",
    "lifecycle.invitation_resend_requested": "Invitation resend requested",
    "lifecycle.extended_by_admin": "Extended by an admin",
    "policy.changed": "Intake policy changed",
    "engagement.stage_approved": "Stage approved",
    "engagement.changes_requested": "Changes requested",
    "engagement.resubmitted": "Resubmitted",
    "engagement.cancelled": "Cancelled",
    "engagement.expired": "Expired",
    "approval.delegated": "Reassigned",
    "approval.reminded": "Approver reminded",
    "approval.escalated": "Escalated",
}
# The program report: medians with how many they cover, durations ("2 d 4 h"), percentages.
REPORT_FIGURES = "Key figures"
REPORT_MEDIAN_DECIDED = "{duration} ({count} decided)"
REPORT_MEDIAN_SET_UP = "{duration} ({count} set up)"
REPORT_PERCENT = "{value}%"
REPORT_MORE_TEAMS = "and {count} more teams"
REPORT_MORE_TEAM = "and 1 more team"
REPORT_UNNAMED_TEAM = "(no name)"
DURATION_DAYS = "{count} d"
DURATION_HOURS = "{count} h"
DURATION_MINUTES = "{count} min"
DURATION_SECONDS = "{count} s"
