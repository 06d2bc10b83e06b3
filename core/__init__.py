"""The domain: engagement model and state machine, intake validation, use cases and ports.

Imports only the standard library and pydantic; never the project's adapters or a framework.
"""
