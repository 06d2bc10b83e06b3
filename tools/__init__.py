"""Developer tools: Node scripts for the official Adaptive Cards renderer and the Teams manifest
schema (validate_cards.js, render_cards.js, validate_manifest.js) and their Python drivers."""
