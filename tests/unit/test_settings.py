from __future__ import annotations

import pytest

from settings import Settings, SettingsError

BOT = {"MicrosoftAppId": "11111111-2222-3333-4444-555555555555", "MicrosoftAppPassword": "pw"}
GRAPH = {"GRAPH_TENANT_ID": "t", "GRAPH_CLIENT_ID": "c", "GRAPH_CLIENT_SECRET": "s"}


def test_nothing_configured_is_dev_mode() -> None:
    settings = Settings.from_env({})
    assert settings.dev_mode and not settings.auth_enabled


def test_bot_and_graph_configured_is_production() -> None:
    settings = Settings.from_env({**BOT, **GRAPH})
    assert not settings.dev_mode and settings.auth_enabled and settings.graph_configured


def test_bot_credentials_without_graph_refuse_to_start_instead_of_using_the_simulator() -> None:
    with pytest.raises(SettingsError, match="Microsoft Graph is not configured"):
        Settings.from_env(BOT)


def test_real_graph_without_bot_auth_needs_an_explicit_opt_in() -> None:
    with pytest.raises(SettingsError, match="ALLOW_UNAUTHENTICATED"):
        Settings.from_env(GRAPH)
    assert not Settings.from_env({**GRAPH, "ALLOW_UNAUTHENTICATED": "true"}).auth_enabled


def test_two_graph_credentials_are_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="GRAPH_TOKEN, GRAPH_CLIENT_SECRET"):
        Settings.from_env({**BOT, **GRAPH, "GRAPH_TOKEN": "x"})


def test_graph_base_url_without_a_credential_is_refused() -> None:
    with pytest.raises(SettingsError, match="no Graph credential"):
        Settings.from_env({**BOT, "GRAPH_BASE_URL": "http://127.0.0.1:9/v1.0"})


def test_malformed_values_name_the_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PORT": "eighty", "MicrosoftAppType": "Whatever"})
    assert "PORT" in str(caught.value) and "MicrosoftAppType" in str(caught.value)


def test_admin_ids_are_split_on_commas_and_semicolons() -> None:
    assert Settings.from_env({"ADMIN_IDS": "a, b;c ,"}).admin_ids == frozenset({"a", "b", "c"})


def test_secrets_do_not_appear_in_the_settings_repr() -> None:
    text = repr(Settings.from_env({**BOT, **GRAPH, "GRAPH_CLIENT_SECRET": "hunter2"}))
    assert "hunter2" not in text and "'pw'" not in text


def test_missing_certificate_file_is_reported_with_its_path() -> None:
    env = {
        **BOT,
        "GRAPH_TENANT_ID": "t",
        "GRAPH_CLIENT_ID": "c",
        "GRAPH_CERTIFICATE_PATH": "/nonexistent/cert.pem",
    }
    with pytest.raises(SettingsError, match=r"/nonexistent/cert\.pem"):
        Settings.from_env(env)


def test_every_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    from settings import ENV_NAMES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [name for name in ENV_NAMES.values() if f"`{name}`" not in readme]
    assert missing == [], f"add these settings to README.md's table: {missing}"


SINGLE = {**BOT, **GRAPH, "MicrosoftAppType": "SingleTenant", "MicrosoftAppTenantId": "home"}


def test_single_tenant_bot_serves_only_its_own_tenant_by_default() -> None:
    assert Settings.from_env(SINGLE).served_tenant_ids == {"home"}


def test_multi_tenant_bot_and_dev_mode_serve_every_tenant_by_default() -> None:
    assert Settings.from_env({**BOT, **GRAPH}).served_tenant_ids == frozenset()
    assert Settings.from_env({}).served_tenant_ids == frozenset()


def test_allowed_tenant_ids_replace_the_default() -> None:
    settings = Settings.from_env({**SINGLE, "ALLOWED_TENANT_IDS": "home, partner ;other"})
    assert settings.served_tenant_ids == {"home", "partner", "other"}


def test_a_database_other_than_sqlite_or_postgresql_is_refused_at_start_by_name() -> None:
    with pytest.raises(SettingsError, match=r"DATABASE_URL.*SQLite or PostgreSQL.*'mysql'") as e:
        Settings.from_env({"DATABASE_URL": "mysql://user:secret@db/fc"})
    assert "secret" not in str(e.value)  # the URL's password is never echoed
    assert Settings.from_env({"DATABASE_URL": "postgres://u@h/db"}).database_url


def test_secrets_for_log_redaction_include_the_database_password_in_both_spellings() -> None:
    settings = Settings(
        database_url="postgresql://fc:p%40ss%3Aw0rd@db.contoso.com:5432/fc",
        app_password="bot-password",
        metrics_token="m" * 32,
    )
    assert set(settings.secrets) == {"bot-password", "m" * 32, "p%40ss%3Aw0rd", "p@ss:w0rd"}
    assert Settings().secrets == []
