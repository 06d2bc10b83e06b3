"""The intake form (a new request, or the same form again with the user's values, errors or a
word about their draft), the same form for a request sent back for changes, and the preview of
a checked request, with Confirm and Edit.

The form echoes what the user typed in its inputs, raw (an input shows its value literally) but
made safe and bounded: without control characters and bidi overrides, and at most as long as
the field allows. Text shown in TextBlocks and facts is clipped and escaped as on every card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from cards import verbs
from cards.common import (
    LONG_TEXT_STEPS,
    MESSAGE_MAX,
    REASON_MAX,
    SHORT_MAX,
    Card,
    access_ends,
    adaptive_card,
    clip,
    dates_text,
    execute,
    fact_set,
    fitted,
    freelancer_facts,
    freelancer_with_email,
    long_texts,
    terms_facts,
    text_block,
    text_card,
    title_block,
)
from core import texts
from core.approvals import revision_values
from core.channel_names import MAX_CHANNEL_NAME, suggest_channel_name
from core.config import ProgramConfig
from core.intake import (
    FIELD_BUDGET,
    FIELD_CHANNEL_NAME,
    FIELD_CLASSIFICATION,
    FIELD_DESCRIPTION,
    FIELD_END_DATE,
    FIELD_FREELANCER_EMAIL,
    FIELD_FREELANCER_NAME,
    FIELD_FREELANCER_ORG,
    FIELD_HOURS,
    FIELD_JUSTIFICATION,
    FIELD_PROFILE_URL,
    FIELD_PROJECT_TITLE,
    FIELD_START_DATE,
    FIELD_TEAM,
    INTAKE_FIELDS,
    LIMITS,
    MAX_FIELD_LENGTH,
    MULTILINE_FIELDS,
)
from core.intake_service import IntakePreview
from core.model import DataClassification, Engagement, TeamInstallation

DEFAULT_DURATION = timedelta(days=90)
DEFAULT_CLASSIFICATION = DataClassification.INTERNAL
NOTICE_ID = "notice"
DATES_ZONE_ID = "dates_zone"
MESSAGE_ID = "message"
# The most of a date field's value the form gives back: a date in words ("12 January 2026",
# where a host shows a text box) fits; Input.Date itself sends YYYY-MM-DD.
DATE_ECHO_MAX = 40

LABELS: dict[str, str] = {
    FIELD_PROJECT_TITLE: texts.LABEL_PROJECT_TITLE,
    FIELD_DESCRIPTION: texts.LABEL_DESCRIPTION,
    FIELD_JUSTIFICATION: texts.LABEL_JUSTIFICATION,
    FIELD_FREELANCER_NAME: texts.LABEL_FREELANCER_NAME,
    FIELD_FREELANCER_EMAIL: texts.LABEL_FREELANCER_EMAIL,
    FIELD_FREELANCER_ORG: texts.LABEL_FREELANCER_ORG,
    FIELD_PROFILE_URL: texts.LABEL_PROFILE_URL,
    FIELD_START_DATE: texts.LABEL_START_DATE,
    FIELD_END_DATE: texts.LABEL_END_DATE,
    FIELD_CLASSIFICATION: texts.LABEL_CLASSIFICATION,
    FIELD_BUDGET: texts.LABEL_BUDGET,
    FIELD_HOURS: texts.LABEL_HOURS,
    FIELD_TEAM: texts.LABEL_TEAM,
    FIELD_CHANNEL_NAME: texts.LABEL_CHANNEL_NAME,
}

_PLACEHOLDERS: dict[str, str] = {
    FIELD_PROJECT_TITLE: texts.PLACEHOLDER_PROJECT_TITLE,
    FIELD_DESCRIPTION: texts.PLACEHOLDER_DESCRIPTION,
    FIELD_JUSTIFICATION: texts.PLACEHOLDER_JUSTIFICATION,
    FIELD_FREELANCER_NAME: texts.PLACEHOLDER_FREELANCER_NAME,
    FIELD_FREELANCER_EMAIL: texts.PLACEHOLDER_FREELANCER_EMAIL,
    FIELD_FREELANCER_ORG: texts.PLACEHOLDER_FREELANCER_ORG,
    FIELD_PROFILE_URL: texts.PLACEHOLDER_PROFILE_URL,
    FIELD_BUDGET: texts.PLACEHOLDER_BUDGET,
    FIELD_HOURS: texts.PLACEHOLDER_HOURS,
}

# Input.Text styles: the keyboard and autofill the client offers.
_STYLES: dict[str, str] = {FIELD_FREELANCER_EMAIL: "Email", FIELD_PROFILE_URL: "Url"}


@dataclass(frozen=True)
class Echo:
    """How much the form gives back: each value at most `value` characters (and never more than
    its field allows), each team's name in the list at most `team`, each message (an error,
    the notice) at most `message`."""

    value: int
    team: int
    message: int


# Tried in order until the form fits CARD_BUDGET. Only a form whose every field is full of wide
# characters (emoji, 4 bytes each), or whose messages quote such values, needs the next ones:
# the values are cut rather than the form refused by Teams.
ECHOES = (
    Echo(MAX_FIELD_LENGTH, SHORT_MAX, MESSAGE_MAX),
    Echo(1000, 100, 500),
    Echo(400, 40, 200),
)


def error_block_id(field: str) -> str:
    """The id of the TextBlock that shows `field`'s error message."""
    return f"{field}_error"


def max_length(field: str) -> int:
    """The most characters the card lets a text field hold (what intake accepts)."""
    return MAX_CHANNEL_NAME if field == FIELD_CHANNEL_NAME else LIMITS[field][1]


def intake_card(
    teams: Sequence[TeamInstallation],
    *,
    today: date,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    selected_team_id: str | None = None,
    justification_required: bool = True,
    time_zone: str | None = None,
    notice: str | None = None,
    draft: bool = False,
) -> Card:
    """The intake form. Re-rendered with `values` (what the user typed, kept in every input)
    and `errors` (one message per wrong field, shown under that field; a key that is no field,
    such as FORM_PROBLEM, is shown at the top). No client-side required-validation: the server
    validates and answers with this card again.

    `justification_required` comes from the tenant's policy (the label says "optional" when it
    is not); `time_zone` is the zone the dates are days in, said under them; `notice` (the
    draft was kept, saved, dropped) is shown at the top; with `draft`, the requester has a
    saved draft and gets "Discard draft" besides Submit and "Save for later".
    """
    if not teams:
        return text_card(texts.NO_TEAMS, title=texts.INTAKE_TITLE)
    form = _Form(
        teams,
        today=today,
        values=values or {},
        errors=errors or {},
        selected=selected_team_id,
        justification_required=justification_required,
        time_zone=time_zone,
        notice=notice,
        draft=draft,
    )
    return fitted(form.card, ECHOES)


def changes_requested_card(
    engagement: Engagement,
    *,
    teams: Sequence[TeamInstallation],
    today: date,
    comment: str,
    comment_by: str,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
    time_zone: str | None = None,
    justification_required: bool = True,
) -> Card:
    """The request sent back to its requester: the intake form titled "Change your request
    FC-12", with who asked for what change on top, filled with `values` (what the requester
    typed, when re-rendered with `errors`) or else the request as it was sent. Its one button
    sends the changed request (RESUBMIT, with the engagement id); there is no draft to save or
    discard."""
    title = texts.CHANGES_TITLE.format(ref=engagement.ref)
    if not teams:
        return text_card(texts.NO_TEAMS, title=title)
    notice = texts.CHANGES_NOTICE.format(
        name=clip(comment_by.strip() or texts.UNKNOWN_APPROVER, SHORT_MAX),
        comment=clip(comment.strip() or texts.NO_REASON_GIVEN, REASON_MAX),
    )
    form = _Form(
        teams,
        today=today,
        values=revision_values(engagement) if values is None else values,
        errors=errors or {},
        selected=engagement.team_id,
        justification_required=justification_required,
        time_zone=time_zone,
        notice=notice,
        draft=False,
        title=title,
        resubmit=_engagement_id(engagement),
        revision=engagement.revision,
    )
    return fitted(form.card, ECHOES)


def _engagement_id(engagement: Engagement) -> int:
    if engagement.id is None:
        raise ValueError("engagement has no id before it is stored")
    return engagement.id


@dataclass(frozen=True)
class _Form:
    teams: Sequence[TeamInstallation]
    today: date
    values: Mapping[str, str]
    errors: Mapping[str, str]
    selected: str | None
    justification_required: bool
    time_zone: str | None
    notice: str | None
    draft: bool
    title: str = texts.INTAKE_TITLE
    # The engagement sent back for changes: the form's one button resubmits it.
    resubmit: int | None = None
    revision: int = 1  # the round of changes this form answers (a later round refuses it)

    def card(self, echo: Echo) -> Card:
        # Messages may quote what the user typed (the channel name that is taken, say).
        errors = {field: clip(message, echo.message) for field, message in self.errors.items()}
        body: list[Card] = [title_block(clip(self.title, SHORT_MAX))]
        if errors:
            body.append(
                text_block(
                    texts.INTAKE_FIX_ERRORS,
                    color="attention",
                    weight="bolder",
                    element_id="errors",
                )
            )
            # Errors that belong to no field of the form still have to be seen.
            body.extend(
                text_block(message, color="attention", size="small")
                for field, message in errors.items()
                if field not in INTAKE_FIELDS
            )
        if self.notice:
            body.append(text_block(clip(self.notice, echo.message), element_id=NOTICE_ID))
        if self.resubmit is None:  # a request sent back says what to do in its notice
            body.append(text_block(texts.INTAKE_INTRO))

        for field in INTAKE_FIELDS:
            element = self._input(field, echo)
            if field in errors:
                element["errorMessage"] = errors[field]
            elif field == FIELD_START_DATE and self.resubmit is not None:
                # A request sent back days later may start before today, which the client
                # refuses to send (`min`): say why instead of just marking the field.
                element["errorMessage"] = texts.ERR_START_PAST
            body.append(element)
            if field in errors:
                body.append(
                    text_block(
                        errors[field],
                        color="attention",
                        size="small",
                        spacing="small",
                        element_id=error_block_id(field),
                    )
                )
            if field == FIELD_END_DATE and self.time_zone:
                zone = texts.INTAKE_DATES_ZONE.format(zone=clip(self.time_zone, SHORT_MAX))
                body.append(
                    text_block(
                        zone, subtle=True, size="small", spacing="small", element_id=DATES_ZONE_ID
                    )
                )

        return adaptive_card(body, actions=self._actions())

    def _actions(self) -> list[Card]:
        if self.resubmit is not None:
            return [
                execute(
                    verbs.RESUBMIT,
                    texts.CHANGES_SUBMIT,
                    data={verbs.ENGAGEMENT_ID: self.resubmit, verbs.REVISION: self.revision},
                    style="positive",
                    inputs=True,
                )
            ]
        actions = [
            execute(verbs.INTAKE_SUBMIT, texts.INTAKE_SUBMIT, style="positive", inputs=True),
            execute(verbs.INTAKE_SAVE_DRAFT, texts.INTAKE_SAVE_DRAFT, inputs=True),
        ]
        if self.draft:
            # Nothing of the form is needed to drop the draft, so nothing is sent.
            actions.append(execute(verbs.INTAKE_DISCARD, texts.INTAKE_DISCARD))
        return actions

    def _input(self, field: str, echo: Echo) -> Card:
        value = self.values.get(field, "")
        if field in (FIELD_START_DATE, FIELD_END_DATE):
            return self._date(field, value)
        if field == FIELD_TEAM:
            return self._team(value, echo)
        if field == FIELD_CLASSIFICATION:
            return _classification(value)
        label = LABELS[field]
        if field == FIELD_JUSTIFICATION and not self.justification_required:
            label = texts.LABEL_JUSTIFICATION_OPTIONAL
        most = max_length(field)
        element: Card = {
            "type": "Input.Text",
            "id": field,
            "label": label,
            "maxLength": most,
            # An input shows its value literally: kept raw, only made safe and bounded.
            "value": clip(value, min(most, echo.value), mark=False),
        }
        if field == FIELD_CHANNEL_NAME:
            title = clip(self.values.get(FIELD_PROJECT_TITLE, ""), max_length(FIELD_PROJECT_TITLE))
            suggestion = suggest_channel_name(title)
            element["placeholder"] = (
                texts.PLACEHOLDER_CHANNEL_SUGGESTION.format(suggestion=suggestion)
                if suggestion
                else texts.PLACEHOLDER_CHANNEL_NAME
            )
        else:
            element["placeholder"] = _PLACEHOLDERS[field]
        if field in MULTILINE_FIELDS:
            element["isMultiline"] = True
        if field in _STYLES:
            element["style"] = _STYLES[field]
        return element

    def _date(self, field: str, value: str) -> Card:
        element: Card = {"type": "Input.Date", "id": field, "label": LABELS[field]}
        default = self.today if field == FIELD_START_DATE else self.today + DEFAULT_DURATION
        # What was typed is given back, as for every field (a host without a date picker shows
        # a text box), but no more of it than a date could need.
        element["value"] = clip(value, DATE_ECHO_MAX, mark=False) or default.isoformat()
        if field == FIELD_START_DATE:
            element["min"] = self.today.isoformat()
        return element

    def _team(self, value: str, echo: Echo) -> Card:
        element: Card = {
            "type": "Input.ChoiceSet",
            "id": FIELD_TEAM,
            "label": LABELS[FIELD_TEAM],
            "style": "compact",
            "isMultiSelect": False,
            "placeholder": texts.PLACEHOLDER_TEAM,
            "choices": [
                {
                    # A choice's title is shown as is: made safe and bounded, never empty.
                    "title": clip(team.name, echo.team) or texts.UNNAMED_TEAM,
                    "value": team.aad_group_id,
                }
                for team in self.teams
            ],
        }
        chosen = _chosen_team(self.teams, value, self.selected)
        if chosen:
            element["value"] = chosen
        return element


def _classification(value: str) -> Card:
    known = {c.value for c in DataClassification}
    return {
        "type": "Input.ChoiceSet",
        "id": FIELD_CLASSIFICATION,
        "label": LABELS[FIELD_CLASSIFICATION],
        "style": "compact",
        "isMultiSelect": False,
        "choices": [
            {"title": texts.CLASSIFICATION_LABELS[c.value], "value": c.value}
            for c in DataClassification
        ],
        "value": value if value in known else DEFAULT_CLASSIFICATION.value,
    }


def _chosen_team(teams: Sequence[TeamInstallation], *wanted: str | None) -> str | None:
    """The team to preselect: the first wanted one that is offered, else the only one offered."""
    ids = [team.aad_group_id for team in teams]
    for team_id in wanted:
        if team_id and team_id in ids:
            return team_id
    return ids[0] if len(ids) == 1 else None


# --- the preview ---------------------------------------------------------------------------------


def preview_card(preview: IntakePreview, *, message: str | None = None) -> Card:
    """The checked request as it will be sent, before anything is stored: what, who, when (and
    when access ends, in the requester's zone and in UTC), the terms, where, and what pre-flight
    found (`preview.notes`). Confirm carries only the draft's version; Edit nothing.

    `message` (the preview is of a newer version than the one confirmed, say) is shown in
    attention colour."""
    return fitted(lambda long_max: _preview(preview, message, long_max), LONG_TEXT_STEPS)


def _preview(preview: IntakePreview, message: str | None, long_max: int) -> Card:
    form = preview.form
    ends = ProgramConfig(time_zone=preview.time_zone).end_instant(form.end_date)
    body: list[Card] = [title_block(texts.PREVIEW_TITLE), text_block(texts.PREVIEW_INTRO)]
    if message:
        body.append(
            text_block(
                clip(message, MESSAGE_MAX),
                color="attention",
                weight="bolder",
                element_id=MESSAGE_ID,
            )
        )
    body.append(
        fact_set(
            [
                (texts.FACT_PROJECT, clip(form.project_title, SHORT_MAX)),
                (
                    texts.FACT_FREELANCER,
                    freelancer_with_email(form.freelancer_name, str(form.freelancer_email)),
                ),
                *freelancer_facts(form.freelancer_org, form.profile_url),
                (texts.FACT_DATES, dates_text(form.start_date, form.end_date)),
                (texts.FACT_ACCESS_ENDS, access_ends(ends, preview.time_zone)),
                *terms_facts(form.data_classification, form.budget, form.hours),
                (texts.FACT_TEAM, clip(preview.team.name, SHORT_MAX)),
                (texts.FACT_CHANNEL, clip(form.channel_name, SHORT_MAX)),
            ]
        )
    )
    body.extend(long_texts(form.description, form.justification, long_max))
    body.extend(
        text_block(clip(note, MESSAGE_MAX), color="accent", spacing="medium")
        for note in preview.notes
        if note.strip()
    )
    actions = [
        execute(
            verbs.INTAKE_CONFIRM,
            texts.PREVIEW_CONFIRM,
            data={verbs.DRAFT_VERSION: preview.draft.version},
            style="positive",
        ),
        execute(verbs.INTAKE_EDIT, texts.PREVIEW_EDIT),
    ]
    return adaptive_card(body, actions=actions)
