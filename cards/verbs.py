"""Every Action.Execute verb the cards use, and the keys their data carries, in one place.

A card action carries only the verb and the engagement id, never the facts of a decision: the
handler reloads the engagement and checks the actor and the state itself.
"""

from __future__ import annotations

INTAKE_SUBMIT = "intake.submit"
APPROVE = "engagement.approve"
REJECT = "engagement.reject"
REFRESH = "engagement.refresh"

ALL_VERBS = frozenset({INTAKE_SUBMIT, APPROVE, REJECT, REFRESH})

ENGAGEMENT_ID = "engagement_id"  # the data key of every engagement action
REJECT_REASON = "reject_reason"  # the input id of the rejection reason
