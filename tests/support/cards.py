"""Reading Adaptive Cards out of what the bot sent: their text, inputs and Action.Execute verbs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


def card_of(activity: dict[str, Any]) -> dict[str, Any] | None:
    for attachment in activity.get("attachments") or []:
        if attachment.get("contentType") == CARD_CONTENT_TYPE:
            content = attachment.get("content")
            return content if isinstance(content, dict) else None
    return None


def invoke_card(body: Any) -> dict[str, Any]:
    """The card of an adaptiveCard/action invoke response body."""
    assert isinstance(body, dict), body
    assert body.get("statusCode") == 200, body
    assert body.get("type") == CARD_CONTENT_TYPE, body
    card = body["value"]
    assert isinstance(card, dict)
    return card


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def card_text(card: dict[str, Any] | None) -> str:
    """All visible text of a card (TextBlocks and facts), unescaped, one string."""
    if card is None:
        return ""
    parts: list[str] = []
    for node in walk(card):
        if node.get("type") == "TextBlock":
            parts.append(str(node.get("text", "")))
        if "title" in node and "value" in node and node.get("type") is None:
            parts.append(f"{node['title']} {node['value']}")
    return " ".join(parts).replace("\\", "")


def verbs(card: dict[str, Any] | None) -> list[str]:
    if card is None:
        return []
    return [
        str(node["verb"])
        for node in walk(card)
        if node.get("type") == "Action.Execute" and "verb" in node and not _is_refresh(card, node)
    ]


def _is_refresh(card: dict[str, Any], node: dict[str, Any]) -> bool:
    refresh = card.get("refresh")
    return isinstance(refresh, dict) and refresh.get("action") is node


def action_data(card: dict[str, Any], verb: str) -> dict[str, Any]:
    for node in walk(card):
        if node.get("type") == "Action.Execute" and node.get("verb") == verb:
            data = node.get("data") or {}
            assert isinstance(data, dict)
            return data
    raise AssertionError(f"no {verb} action in card")


def inputs(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        str(node["id"]): node
        for node in walk(card)
        if str(node.get("type", "")).startswith("Input.") and "id" in node
    }
