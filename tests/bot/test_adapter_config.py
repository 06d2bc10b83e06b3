"""BotAuthConfig and create_adapter: which botbuilder authentication mode each configuration
selects, and configuration mistakes caught at start-up rather than at the first request."""

from __future__ import annotations

import pytest
from botframework.connector.auth import AuthenticationConstants

from bot.adapter import BotAuthConfig, create_adapter


def _inner_auth_class(config: BotAuthConfig) -> str:
    # ConfigurationBotFrameworkAuthentication delegates to the mode botbuilder picked.
    return type(create_adapter(config).bot_framework_authentication._inner).__name__


def test_empty_app_id_disables_auth_and_uses_the_default_mode() -> None:
    config = BotAuthConfig(openid_metadata_url="http://127.0.0.1:1/.well-known/x")
    assert not config.auth_enabled
    # Parameterized mode with an empty app id turns a missing header into a 500.
    assert _inner_auth_class(config) == "_PublicCloudBotFrameworkAuthentication"


def test_app_id_without_overrides_uses_the_public_cloud() -> None:
    config = BotAuthConfig(app_id="app", app_password="pw")
    assert config.auth_enabled
    assert _inner_auth_class(config) == "_PublicCloudBotFrameworkAuthentication"


def test_overrides_switch_to_parameterized_auth_with_public_cloud_defaults() -> None:
    config = BotAuthConfig(
        app_id="app", app_password="pw", openid_metadata_url="https://example.test/openid"
    )
    inner = create_adapter(config).bot_framework_authentication._inner
    assert type(inner).__name__ == "_ParameterizedBotFrameworkAuthentication"
    assert inner._to_bot_from_channel_open_id_metadata_url == "https://example.test/openid"
    assert inner._to_bot_from_channel_token_issuer == "https://api.botframework.com"
    assert (
        inner._to_channel_from_bot_login_url
        == AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX
    )


def test_the_password_is_not_in_the_config_repr() -> None:
    config = BotAuthConfig(app_id="app", app_password="hunter2-secret")
    assert "hunter2-secret" not in repr(config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"app_type": "Multitenant"}, "app_type must be one of"),
        ({"app_id": "app", "app_type": "SingleTenant", "app_password": "pw"}, "app_tenant_id"),
        ({"app_id": "app", "app_type": "UserAssignedMSI"}, "app_tenant_id"),
        ({"app_id": "app"}, "app_password"),
        (
            {"app_id": "app", "app_password": "pw", "channel_login_url": "http://127.0.0.1/adfs"},
            "https",
        ),
    ],
)
def test_incomplete_configurations_are_refused(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BotAuthConfig(**kwargs)
