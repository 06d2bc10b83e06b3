"""Tenant policy: what intake allows (e-mail domains, length, channel prefix, justification,
default approver), stored per tenant in our database and changed by admins with `/policy set`.

A key an admin never set takes the deployment's default (settings, via ProgramConfig). Every
submission reads the policy afresh, so a change takes effect on the next submission.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core import audit_actions as A
from core import texts
from core.admin_rights import AdminRights
from core.channel_names import channel_name_error
from core.clock import Clock
from core.config import ProgramConfig
from core.engagements import append_audit
from core.errors import DirectoryError, InvalidInput, NotAuthorised, ServiceUnavailable
from core.model import Actor, AuditOutcome, PolicySetting
from core.ports import Directory, Storage, Transaction

# Free e-mail services: with block_consumer_domains on, nobody is invited from these. The list
# is the common providers; admins add others to blocked_domains.
CONSUMER_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "gmx.com",
        "gmx.net",
        "gmx.de",
        "web.de",
        "mail.com",
        "proton.me",
        "protonmail.com",
        "yandex.com",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
        "zoho.com",
    }
)

MAX_DOMAINS = 200
MAX_PREFIX = 20
MAX_DAYS_LIMIT = 3_650
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_TRUE = frozenset({"on", "true", "yes", "1"})
_FALSE = frozenset({"off", "false", "no", "0"})
# Words that set a key to "nothing": no domain list, no prefix, no default approver.
_NONE_WORDS = frozenset({"none", "-", '""'})
_QUOTES = (('"', '"'), ("\u201c", "\u201d"), ("'", "'"))


class PolicyKey(enum.StrEnum):
    ALLOWED_DOMAINS = "allowed_domains"
    BLOCKED_DOMAINS = "blocked_domains"
    BLOCK_CONSUMER_DOMAINS = "block_consumer_domains"
    MAX_ENGAGEMENT_DAYS = "max_engagement_days"
    CHANNEL_PREFIX = "channel_prefix"
    JUSTIFICATION_REQUIRED = "justification_required"
    DEFAULT_APPROVER = "default_approver"
    SECOND_STAGE_GROUP = "second_stage_group"
    SECOND_STAGE_DAYS = "second_stage_days"


@dataclass(frozen=True)
class TenantPolicy:
    """The policy in force for one tenant. Domain lists hold lower-case domains; a domain also
    covers its subdomains (contoso.com covers eu.contoso.com). An empty allow-list allows any
    domain that is not blocked; blocked always wins."""

    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    block_consumer_domains: bool = False
    max_engagement_days: int = 365
    channel_prefix: str = ""
    justification_required: bool = True
    default_approver_id: str | None = None
    default_approver_name: str | None = None
    # A second approval stage by any member of this Entra group, for confidential data or an
    # engagement longer than `second_stage_days` (None: confidential data only).
    second_stage_group_id: str | None = None
    second_stage_days: int | None = None

    def email_domain_problem(self, email: str) -> str | None:
        """Why the policy refuses a freelancer with this e-mail address, or None."""
        domain = email.rpartition("@")[2].strip().lower().rstrip(".")
        if _covered(domain, self.blocked_domains):
            return texts.ERR_DOMAIN_BLOCKED.format(domain=domain)
        if self.block_consumer_domains and _covered(domain, CONSUMER_DOMAINS):
            return texts.ERR_DOMAIN_CONSUMER.format(domain=domain)
        if self.allowed_domains and not _covered(domain, self.allowed_domains):
            return texts.ERR_DOMAIN_NOT_ALLOWED.format(
                domain=domain, domains=", ".join(self.allowed_domains)
            )
        return None

    def prefixed_channel_name(self, name: str) -> str:
        """`name` with the tenant's prefix in front, unless it already starts with it."""
        prefix = self.channel_prefix
        if not prefix or name.casefold().startswith(prefix.casefold()):
            return name
        return prefix + name


def _covered(domain: str, domains: Sequence[str] | frozenset[str]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in domains)


def default_policy(config: ProgramConfig) -> TenantPolicy:
    """The policy of a tenant whose admins have set nothing: the deployment's settings."""
    return TenantPolicy(
        max_engagement_days=config.max_engagement_days,
        default_approver_id=config.default_approver_id,
    )


def policy_from_settings(settings: Sequence[PolicySetting], config: ProgramConfig) -> TenantPolicy:
    """The tenant's stored keys over the deployment's defaults. A stored value that no longer
    parses (an older version wrote it) is ignored rather than failing every submission."""
    policy = default_policy(config)
    values: dict[str, Any] = {}
    for setting in settings:
        try:
            key = PolicyKey(setting.key)
        except ValueError:
            continue
        value = setting.value
        if key in (PolicyKey.ALLOWED_DOMAINS, PolicyKey.BLOCKED_DOMAINS):
            if isinstance(value, list) and all(isinstance(d, str) for d in value):
                values[key.value] = tuple(value)
        elif key in (PolicyKey.BLOCK_CONSUMER_DOMAINS, PolicyKey.JUSTIFICATION_REQUIRED):
            if isinstance(value, bool):
                values[key.value] = value
        elif key is PolicyKey.MAX_ENGAGEMENT_DAYS:
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                values[key.value] = value
        elif key is PolicyKey.CHANNEL_PREFIX:
            if isinstance(value, str):
                values[key.value] = value
        elif key is PolicyKey.SECOND_STAGE_GROUP:
            if isinstance(value, str):
                values["second_stage_group_id"] = value
        elif key is PolicyKey.SECOND_STAGE_DAYS:
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                values["second_stage_days"] = value
        elif isinstance(value, dict) and isinstance(value.get("id"), str):
            values["default_approver_id"] = value["id"]
            values["default_approver_name"] = str(value.get("name") or "")
    return TenantPolicy(**{**policy.__dict__, **values})


# --- parsing what an admin types --------------------------------------------------------------


def unquote(raw: str) -> str:
    """`"Ext - "` -> `Ext - `: quotes keep spaces at the ends of a value."""
    raw = raw.strip()
    for left, right in _QUOTES:
        if len(raw) >= 2 and raw.startswith(left) and raw.endswith(right):
            return raw[1:-1]
    return raw


def parse_domains(raw: str) -> list[str]:
    """`contoso.com, @Fabrikam.com eu.example.org` -> the domains, lower-case, deduplicated.
    `none` -> []. Raises InvalidInput naming the first word that is not a domain."""
    text = unquote(raw)
    if text.strip().lower() in _NONE_WORDS:
        return []
    domains: list[str] = []
    for word in re.split(r"[\s,;]+", text.strip()):
        if not word:
            continue
        domain = word.lower().removeprefix("@").removeprefix("*.").rstrip(".")
        if not _DOMAIN.match(domain):
            raise InvalidInput(texts.POLICY_BAD_DOMAIN.format(word=word[:100]))
        if domain not in domains:
            domains.append(domain)
    if not domains:
        raise InvalidInput(texts.POLICY_DOMAINS_EMPTY)
    if len(domains) > MAX_DOMAINS:
        raise InvalidInput(texts.POLICY_TOO_MANY_DOMAINS.format(max=MAX_DOMAINS))
    return domains


def parse_switch(raw: str) -> bool:
    word = unquote(raw).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise InvalidInput(texts.POLICY_BAD_SWITCH)


def parse_days(raw: str) -> int:
    word = unquote(raw).strip()
    if not (word.isascii() and word.isdigit()) or not 1 <= int(word) <= MAX_DAYS_LIMIT:
        raise InvalidInput(texts.POLICY_BAD_DAYS.format(max=MAX_DAYS_LIMIT))
    return int(word)


def parse_prefix(raw: str) -> str:
    prefix = unquote(raw)
    if prefix.strip().lower() in _NONE_WORDS or not prefix.strip():
        return ""
    if len(prefix) > MAX_PREFIX:
        raise InvalidInput(texts.POLICY_PREFIX_TOO_LONG.format(max=MAX_PREFIX))
    # The prefix must itself be a valid start of a channel name.
    problem = channel_name_error(prefix + "x")
    if problem:
        raise InvalidInput(texts.POLICY_BAD_PREFIX.format(problem=problem))
    return prefix


_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def parse_group(raw: str) -> str | None:
    """An Entra group's object id (a GUID, any case); `none` turns the second stage off."""
    word = unquote(raw).strip().lower()
    if word in _NONE_WORDS:
        return None
    if not _GUID.match(word):
        raise InvalidInput(texts.POLICY_BAD_GROUP.format(word=word[:100]))
    return word


def parse_optional_days(raw: str) -> int | None:
    word = unquote(raw).strip().lower()
    return None if word in _NONE_WORDS else parse_days(word)


# Keys whose value is typed (not looked up in Graph): key -> parser of the admin's text.
_PARSERS: dict[PolicyKey, Callable[[str], Any]] = {
    PolicyKey.ALLOWED_DOMAINS: parse_domains,
    PolicyKey.BLOCKED_DOMAINS: parse_domains,
    PolicyKey.BLOCK_CONSUMER_DOMAINS: parse_switch,
    PolicyKey.MAX_ENGAGEMENT_DAYS: parse_days,
    PolicyKey.CHANNEL_PREFIX: parse_prefix,
    PolicyKey.JUSTIFICATION_REQUIRED: parse_switch,
    PolicyKey.SECOND_STAGE_GROUP: parse_group,
    PolicyKey.SECOND_STAGE_DAYS: parse_optional_days,
}


def policy_key(word: str) -> PolicyKey:
    """The key an admin named (case and `-` for `_` forgiven); InvalidInput listing the keys."""
    try:
        return PolicyKey(word.strip().lower().replace("-", "_"))
    except ValueError:
        raise InvalidInput(
            texts.POLICY_UNKNOWN_KEY.format(
                key=word[:64], keys=", ".join(key.value for key in PolicyKey)
            )
        ) from None


def shown_value(key: PolicyKey, policy: TenantPolicy) -> str:
    """How `/policy` shows a key's value in force."""
    match key:
        case PolicyKey.ALLOWED_DOMAINS:
            return ", ".join(policy.allowed_domains) or texts.POLICY_ANY_DOMAIN
        case PolicyKey.BLOCKED_DOMAINS:
            return ", ".join(policy.blocked_domains) or texts.POLICY_NONE
        case PolicyKey.BLOCK_CONSUMER_DOMAINS:
            return texts.POLICY_ON if policy.block_consumer_domains else texts.POLICY_OFF
        case PolicyKey.MAX_ENGAGEMENT_DAYS:
            return texts.POLICY_DAYS.format(days=policy.max_engagement_days)
        case PolicyKey.CHANNEL_PREFIX:
            return f'"{policy.channel_prefix}"' if policy.channel_prefix else texts.POLICY_NONE
        case PolicyKey.JUSTIFICATION_REQUIRED:
            return texts.POLICY_ON if policy.justification_required else texts.POLICY_OFF
        case PolicyKey.DEFAULT_APPROVER:
            if policy.default_approver_id is None:
                return texts.POLICY_NONE
            return policy.default_approver_name or policy.default_approver_id
        case PolicyKey.SECOND_STAGE_GROUP:
            return policy.second_stage_group_id or texts.POLICY_NONE
        case PolicyKey.SECOND_STAGE_DAYS:
            if policy.second_stage_days is None:
                return texts.POLICY_CONFIDENTIAL_ONLY
            return texts.POLICY_DAYS.format(days=policy.second_stage_days)


@dataclass(frozen=True)
class PolicyLine:
    key: PolicyKey
    value: str  # as shown
    set_by: str | None  # None: the deployment's default
    set_at: datetime | None


@dataclass(frozen=True)
class PolicyView:
    lines: Sequence[PolicyLine]


# --- use cases ----------------------------------------------------------------------------------


class PolicyService:
    """Reads the policy in force, and lets admins show and change it (audited, refusals too)."""

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        config: ProgramConfig,
        *,
        rights: AdminRights,
        directory: Directory | None = None,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._config = config
        self._rights = rights
        self._directory = directory

    async def current(self, tenant_id: str) -> TenantPolicy:
        async with self._storage.transaction() as tx:
            return await policy_in(tx, tenant_id, self._config)

    async def show(self, actor: Actor, tenant_id: str, *, audited: bool = True) -> PolicyView:
        """Every key with its value in force and who set it. `audited=False`: the view shown
        after a change, which is audited as the change."""
        async with self._storage.transaction() as tx:
            await self._require_admin(tx, actor, "/policy")
            settings = {s.key: s for s in await tx.policies.get_all(tenant_id)}
            policy = policy_from_settings(list(settings.values()), self._config)
            if audited:
                now = self._clock.now()
                await append_audit(tx, now, actor, A.COMMAND_PREFIX + "policy", None)
                await tx.commit()
        lines = []
        for key in PolicyKey:
            stored = settings.get(key.value)
            lines.append(
                PolicyLine(
                    key,
                    shown_value(key, policy),
                    stored.updated_by_name if stored else None,
                    stored.updated_at if stored else None,
                )
            )
        return PolicyView(lines)

    async def set(self, actor: Actor, tenant_id: str, key_word: str, raw: str) -> PolicyLine:
        """Validate and store one key. Bad input raises InvalidInput (audited as refused) and
        changes nothing."""
        async with self._storage.transaction() as tx:
            await self._require_admin(tx, actor, "/policy set")
        try:
            key = policy_key(key_word)
            value = await self._parse(key, raw)
        except InvalidInput as invalid:
            await self._audit_refusal(actor, A.POLICY_CHANGED, f"{key_word[:64]}: {invalid}")
            raise
        return await self._store(actor, tenant_id, key, value)

    async def reset(self, actor: Actor, tenant_id: str, key_word: str) -> PolicyLine:
        """Forget the tenant's value of a key: the deployment's default applies again."""
        async with self._storage.transaction() as tx:
            await self._require_admin(tx, actor, "/policy reset")
        try:
            key = policy_key(key_word)
        except InvalidInput as invalid:
            await self._audit_refusal(actor, A.POLICY_CHANGED, f"{key_word[:64]}: {invalid}")
            raise
        return await self._store(actor, tenant_id, key, None)

    async def _store(self, actor: Actor, tenant_id: str, key: PolicyKey, value: Any) -> PolicyLine:
        """Store `value` for `key` (None: forget it, back to the default), audited with the
        value in force before and after."""
        now = self._clock.now()
        async with self._storage.transaction() as tx:
            before = await policy_in(tx, tenant_id, self._config)
            if value is None:
                await tx.policies.remove(tenant_id, key.value)
            else:
                await tx.policies.put(
                    tenant_id, PolicySetting(key.value, value, actor.aad_id, actor.name, now)
                )
            after = await policy_in(tx, tenant_id, self._config)
            detail = f"{key.value}: {shown_value(key, before)} -> {shown_value(key, after)}"
            await append_audit(tx, now, actor, A.POLICY_CHANGED, None, detail=detail[:1000])
            await tx.commit()
        stored = value is not None
        return PolicyLine(
            key, shown_value(key, after), actor.name if stored else None, now if stored else None
        )

    async def _parse(self, key: PolicyKey, raw: str) -> Any:
        """The value to store for `raw`; None means "remove the key"."""
        if not raw.strip():
            raise InvalidInput(texts.POLICY_VALUE_MISSING.format(key=key.value))
        if key is PolicyKey.DEFAULT_APPROVER:
            return await self._approver(unquote(raw).strip())
        return _PARSERS[key](raw)

    async def _approver(self, identifier: str) -> dict[str, str] | None:
        if identifier.lower() in _NONE_WORDS:
            return None
        if self._directory is None:
            raise ServiceUnavailable(texts.POLICY_APPROVER_UNAVAILABLE)
        try:
            user = await self._directory.find_user_by_identifier(identifier[:320])
        except DirectoryError as problem:
            raise ServiceUnavailable(texts.POLICY_APPROVER_UNAVAILABLE) from problem
        shown = identifier[:100]
        if user is None:
            raise InvalidInput(texts.POLICY_APPROVER_UNKNOWN.format(who=shown))
        if user.user_type.lower() != "member":
            raise InvalidInput(texts.POLICY_APPROVER_GUEST.format(who=shown))
        if not user.account_enabled:
            raise InvalidInput(texts.POLICY_APPROVER_DISABLED.format(who=shown))
        return {"id": user.id, "name": user.display_name, "identifier": shown}

    async def _require_admin(self, tx: Transaction, actor: Actor, command: str) -> None:
        if await self._rights.is_admin(actor.aad_id):
            return
        await append_audit(
            tx,
            self._clock.now(),
            actor,
            A.COMMAND_PREFIX + command.lstrip("/").split()[0],
            None,
            AuditOutcome.REFUSED,
            "not admin",
        )
        await tx.commit()
        raise NotAuthorised(texts.ADMIN_ONLY.format(command=command))

    async def _audit_refusal(self, actor: Actor, action: str, detail: str) -> None:
        async with self._storage.transaction() as tx:
            await append_audit(
                tx, self._clock.now(), actor, action, None, AuditOutcome.REFUSED, detail[:1000]
            )
            await tx.commit()


async def policy_in(tx: Transaction, tenant_id: str, config: ProgramConfig) -> TenantPolicy:
    """The tenant's policy, read in the caller's transaction."""
    return policy_from_settings(await tx.policies.get_all(tenant_id), config)
