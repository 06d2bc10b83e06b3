"""The only code (with dialogs/) that touches botbuilder: the aiohttp endpoint and adapter fixes,
auth, the activity handler, commands, card-verb handlers and the Notifier.

May import core, cards and botbuilder; never graph, storage or jobs (app.py injects them).
"""
