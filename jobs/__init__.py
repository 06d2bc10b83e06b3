"""The worker that claims due jobs from the job table and runs core use cases, with leases,
backoff and retries. Imports only core; storage and handlers are injected by app.py.
"""
