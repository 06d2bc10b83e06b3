"""Adaptive Card builders: pure functions from domain objects to card JSON, and the card verbs.

Imports only core and the standard library; callers import from the modules (cards.intake, ...).
"""
