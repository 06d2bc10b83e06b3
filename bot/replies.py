"""Outgoing messages that carry one Adaptive Card."""

from __future__ import annotations

from typing import Any

from botbuilder.core import CardFactory, MessageFactory
from botbuilder.schema import Activity

from cards.common import text_card


def card_message(card: dict[str, Any]) -> Activity:
    return MessageFactory.attachment(CardFactory.adaptive_card(card))


def text_card_message(text: str, *, attention: bool = False) -> Activity:
    return card_message(text_card(text, attention=attention))
