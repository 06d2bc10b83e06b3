"""build_graph_client: credential choice, endpoint and scope; secrets stay out of reprs.

That kiota's retries are off is proved over HTTP in tests/integration/test_graph_directory.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from graph.client import (
    GraphSettings,
    StaticTokenCredential,
    build_graph_client,
    close_graph_client,
    graph_credential,
    graph_scope,
)

TENANT = "00000000-0000-0000-0000-0000000000f1"
CLIENT = "11111111-0000-0000-0000-000000000001"


def self_signed_pem(path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "freelance-connector-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return path


def test_is_configured_only_with_a_credential() -> None:
    assert not GraphSettings(tenant_id=TENANT, client_id=CLIENT).is_configured
    assert GraphSettings(client_secret="s").is_configured
    assert GraphSettings(certificate_path="/c.pem").is_configured
    assert GraphSettings(use_managed_identity=True).is_configured
    assert GraphSettings(static_token="t").is_configured


def test_no_credential_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="No Microsoft Graph credential is configured"):
        build_graph_client(GraphSettings(tenant_id=TENANT, client_id=CLIENT))


def test_two_credentials_are_refused_without_showing_them() -> None:
    settings = GraphSettings(
        tenant_id=TENANT, client_id=CLIENT, client_secret="hunter2", static_token="tok-123"
    )

    with pytest.raises(ValueError, match="configure exactly one") as raised:
        graph_credential(settings)

    assert "hunter2" not in str(raised.value) and "tok-123" not in str(raised.value)


def test_secret_without_tenant_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="tenant_id"):
        graph_credential(GraphSettings(client_id=CLIENT, client_secret="s"))


def test_settings_repr_hides_secret_and_token() -> None:
    shown = repr(GraphSettings(client_secret="hunter2", static_token="tok-123"))

    assert "hunter2" not in shown and "tok-123" not in shown
    assert "client_secret='***'" in shown


async def test_each_setting_picks_its_azure_identity_async_credential(tmp_path: Path) -> None:
    pem = self_signed_pem(tmp_path / "graph.pem")
    credentials = [
        graph_credential(GraphSettings(tenant_id=TENANT, client_id=CLIENT, client_secret="s")),
        graph_credential(
            GraphSettings(tenant_id=TENANT, client_id=CLIENT, certificate_path=str(pem))
        ),
        graph_credential(GraphSettings(use_managed_identity=True, client_id=CLIENT)),
        graph_credential(GraphSettings(static_token="tok")),
    ]
    try:
        assert [type(c) for c in credentials] == [
            ClientSecretCredential,
            CertificateCredential,
            ManagedIdentityCredential,
            StaticTokenCredential,
        ]
        token = await credentials[-1].get_token(
            "https://graph.microsoft.com/.default", claims=None, enable_cae=True
        )
        assert token.token == "tok"
    finally:
        for credential in credentials:
            await credential.close()


@pytest.mark.parametrize(
    ("base_url", "scope"),
    [
        ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default"),
        ("https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/.default"),
        ("http://127.0.0.1:8123/v1.0", "https://graph.microsoft.com/.default"),
    ],
)
def test_scope_follows_the_cloud(base_url: str, scope: str) -> None:
    assert graph_scope(base_url) == scope


async def test_client_uses_the_configured_base_url() -> None:
    client = build_graph_client(
        GraphSettings(base_url="http://127.0.0.1:8123/v1.0/", static_token="tok")
    )
    try:
        assert client.request_adapter.base_url == "http://127.0.0.1:8123/v1.0"
    finally:
        await close_graph_client(client)
