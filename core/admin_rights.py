"""Who is an admin: the ids in ADMIN_IDS, plus the members of an Entra group (ADMIN_GROUP_ID)
asked of the Directory and remembered for a short while."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta

from core import texts
from core.clock import Clock, SystemClock
from core.errors import DirectoryError, ServiceUnavailable
from core.ports import Directory

log = logging.getLogger(__name__)


class AdminRights:
    """`is_admin` answers from ADMIN_IDS at once. With a group configured, anyone else is looked
    up in Graph (checkMemberGroups, transitive) and the answer, yes or no, is kept for `ttl`:
    a turn costs no Graph call while it is fresh, and a removal from the group takes effect
    within `ttl`. When Graph cannot answer, a remembered answer (even an old one) is used;
    without one the check raises ServiceUnavailable rather than guess either way."""

    def __init__(
        self,
        admin_ids: Iterable[str] = (),
        *,
        group_id: str | None = None,
        directory: Directory | None = None,
        clock: Clock | None = None,
        ttl: timedelta = timedelta(minutes=5),
        timeout_seconds: float = 5.0,
        max_remembered: int = 10_000,
    ) -> None:
        if group_id and directory is None:
            raise ValueError("an admin group needs a directory to look members up in")
        # Entra object ids are GUIDs; admins paste them in either case.
        self.admin_ids = frozenset(admin.lower() for admin in admin_ids)
        self.group_id = group_id or None
        self._directory = directory
        self._clock: Clock = clock or SystemClock()
        self._ttl = ttl
        self._timeout = timeout_seconds
        self._max = max_remembered
        self._remembered: OrderedDict[str, tuple[bool, datetime]] = OrderedDict()

    async def is_admin(self, aad_id: str) -> bool:
        key = aad_id.lower()
        if key in self.admin_ids:
            return True
        if self.group_id is None or self._directory is None or not key:
            return False
        now = self._clock.now()
        remembered = self._remembered.get(key)
        if remembered is not None and now - remembered[1] < self._ttl:
            return remembered[0]
        try:
            groups = await asyncio.wait_for(
                self._directory.check_member_groups(aad_id, [self.group_id]),
                timeout=self._timeout,
            )
        except (DirectoryError, TimeoutError) as problem:
            if remembered is not None:
                log.warning("admin group check failed (%s); using the answer from before", problem)
                return remembered[0]
            log.warning("admin group check failed: %s", problem)
            raise ServiceUnavailable(texts.ADMIN_CHECK_UNAVAILABLE) from problem
        member = self.group_id.lower() in {group.lower() for group in groups}
        self._remember(key, member, now)
        return member

    def _remember(self, key: str, member: bool, now: datetime) -> None:
        self._remembered[key] = (member, now)
        self._remembered.move_to_end(key)
        while len(self._remembered) > self._max:
            self._remembered.popitem(last=False)
