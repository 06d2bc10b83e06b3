"""The intake form: a new request, or the same form again with the user's values and errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta

from cards import verbs
from cards.common import Card, adaptive_card, text_block, text_card, title_block
from core import texts
from core.channel_names import MAX_CHANNEL_NAME, suggest_channel_name
from core.intake import (
    FIELD_CHANNEL_NAME,
    FIELD_DESCRIPTION,
    FIELD_END_DATE,
    FIELD_FREELANCER_EMAIL,
    FIELD_FREELANCER_NAME,
    FIELD_PROJECT_TITLE,
    FIELD_START_DATE,
    FIELD_TEAM,
    INTAKE_FIELDS,
    LIMITS,
)
from core.model import TeamInstallation

DEFAULT_DURATION = timedelta(days=90)

LABELS: dict[str, str] = {
    FIELD_PROJECT_TITLE: texts.LABEL_PROJECT_TITLE,
    FIELD_DESCRIPTION: texts.LABEL_DESCRIPTION,
    FIELD_FREELANCER_NAME: texts.LABEL_FREELANCER_NAME,
    FIELD_FREELANCER_EMAIL: texts.LABEL_FREELANCER_EMAIL,
    FIELD_START_DATE: texts.LABEL_START_DATE,
    FIELD_END_DATE: texts.LABEL_END_DATE,
    FIELD_TEAM: texts.LABEL_TEAM,
    FIELD_CHANNEL_NAME: texts.LABEL_CHANNEL_NAME,
}

_PLACEHOLDERS: dict[str, str] = {
    FIELD_PROJECT_TITLE: texts.PLACEHOLDER_PROJECT_TITLE,
    FIELD_DESCRIPTION: texts.PLACEHOLDER_DESCRIPTION,
    FIELD_FREELANCER_NAME: texts.PLACEHOLDER_FREELANCER_NAME,
    FIELD_FREELANCER_EMAIL: texts.PLACEHOLDER_FREELANCER_EMAIL,
}


def error_block_id(field: str) -> str:
    """The id of the TextBlock that shows `field`'s error message."""
    return f"{field}_error"


def intake_card(
    teams: Sequence[TeamInstallation],
    *,
    today: date,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    selected_team_id: str | None = None,
) -> Card:
    """The intake form. Re-rendered with `values` (what the user typed, kept in every input)
    and `errors` (one message per wrong field, shown under that field). No client-side
    required-validation: the server validates and answers with this card again."""
    if not teams:
        return text_card(texts.NO_TEAMS, title=texts.INTAKE_TITLE)
    values = values or {}
    errors = errors or {}

    body: list[Card] = [title_block(texts.INTAKE_TITLE)]
    if errors:
        body.append(
            text_block(
                texts.INTAKE_FIX_ERRORS, color="attention", weight="bolder", element_id="errors"
            )
        )
        # Errors that belong to no field of the form still have to be seen.
        body.extend(
            text_block(message, color="attention", size="small")
            for field, message in errors.items()
            if field not in INTAKE_FIELDS
        )
    body.append(text_block(texts.INTAKE_INTRO))

    for field in INTAKE_FIELDS:
        element = _input(field, teams, today=today, values=values, selected=selected_team_id)
        if field in errors:
            element["errorMessage"] = errors[field]
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

    submit: Card = {
        "type": "Action.Execute",
        "id": verbs.INTAKE_SUBMIT,
        "title": texts.INTAKE_SUBMIT,
        "verb": verbs.INTAKE_SUBMIT,
        "associatedInputs": "auto",
        "style": "positive",
    }
    return adaptive_card(body, actions=[submit])


def _input(
    field: str,
    teams: Sequence[TeamInstallation],
    *,
    today: date,
    values: Mapping[str, str],
    selected: str | None,
) -> Card:
    value = values.get(field, "")
    if field in (FIELD_START_DATE, FIELD_END_DATE):
        kind = "Input.Date"
    elif field == FIELD_TEAM:
        kind = "Input.ChoiceSet"
    else:
        kind = "Input.Text"
    element: Card = {"type": kind, "id": field, "label": LABELS[field]}
    if kind == "Input.Date":
        default = today if field == FIELD_START_DATE else today + DEFAULT_DURATION
        element["value"] = value or default.isoformat()
        if field == FIELD_START_DATE:
            element["min"] = today.isoformat()
    elif kind == "Input.ChoiceSet":
        element.update(
            style="compact",
            isMultiSelect=False,
            placeholder=texts.PLACEHOLDER_TEAM,
            choices=[{"title": team.name, "value": team.aad_group_id} for team in teams],
        )
        chosen = _chosen_team(teams, value, selected)
        if chosen:
            element["value"] = chosen
    elif field == FIELD_CHANNEL_NAME:
        suggestion = suggest_channel_name(values.get(FIELD_PROJECT_TITLE, ""))
        element.update(
            maxLength=MAX_CHANNEL_NAME,
            value=value,
            placeholder=(
                texts.PLACEHOLDER_CHANNEL_SUGGESTION.format(suggestion=suggestion)
                if suggestion
                else texts.PLACEHOLDER_CHANNEL_NAME
            ),
        )
    else:
        element.update(
            maxLength=LIMITS[field][1],
            placeholder=_PLACEHOLDERS[field],
            value=value,
        )
        if field == FIELD_DESCRIPTION:
            element["isMultiline"] = True
        if field == FIELD_FREELANCER_EMAIL:
            element["style"] = "Email"
    return element


def _chosen_team(teams: Sequence[TeamInstallation], *wanted: str | None) -> str | None:
    """The team to preselect: the first wanted one that is offered, else the only one offered."""
    ids = [team.aad_group_id for team in teams]
    for team_id in wanted:
        if team_id and team_id in ids:
            return team_id
    return ids[0] if len(ids) == 1 else None
