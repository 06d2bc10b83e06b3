"""The welcome card, posted in an engagement's new private channel."""

from __future__ import annotations

from cards.common import SHORT_MAX, Card, adaptive_card, clip, format_date, text_block, title_block
from core import texts
from core.model import Engagement


def welcome_card(engagement: Engagement) -> Card:
    """Posted in the engagement's new private channel."""
    return adaptive_card(
        [
            title_block(
                texts.WELCOME_CHANNEL_TITLE.format(
                    freelancer=clip(engagement.freelancer_name, SHORT_MAX)
                )
            ),
            text_block(
                texts.WELCOME_CHANNEL_BODY.format(
                    project=clip(engagement.project_title, SHORT_MAX),
                    start=format_date(engagement.start_date),
                    end=format_date(engagement.end_date),
                    requester=clip(engagement.requester_name, SHORT_MAX),
                )
            ),
        ]
    )
