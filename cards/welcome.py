"""The welcome card, posted in an engagement's new private channel."""

from __future__ import annotations

from cards.common import Card, adaptive_card, format_date, text_block, title_block
from core import texts
from core.model import Engagement


def welcome_card(engagement: Engagement) -> Card:
    """Posted in the engagement's new private channel."""
    return adaptive_card(
        [
            title_block(texts.WELCOME_CHANNEL_TITLE.format(freelancer=engagement.freelancer_name)),
            text_block(
                texts.WELCOME_CHANNEL_BODY.format(
                    project=engagement.project_title,
                    start=format_date(engagement.start_date),
                    end=format_date(engagement.end_date),
                    requester=engagement.requester_name,
                )
            ),
        ]
    )
