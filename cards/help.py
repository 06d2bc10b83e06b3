"""The help card, which is also the greeting sent when the app is installed."""

from __future__ import annotations

from collections.abc import Sequence

from cards.common import Card, adaptive_card, fact_set, text_block, title_block
from core import texts


def help_card(commands: Sequence[tuple[str, str]], *, greeting: bool = False) -> Card:
    """One line per (usage, description); with `greeting`, the welcome comes first."""
    body: list[Card] = []
    if greeting:
        body.append(text_block(texts.WELCOME_TITLE, size="large", weight="bolder"))
        body.append(text_block(texts.WELCOME_BODY))
    body.append(title_block(texts.HELP_TITLE))
    body.append(fact_set(commands))
    body.append(text_block(texts.HELP_FOOTER, subtle=True, size="small"))
    return adaptive_card(body)
