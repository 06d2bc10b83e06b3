"""A local stand-in for the Bot Framework's token services, in both directions.

Inbound (Bot Connector -> bot): an OpenID metadata document and a JWKS, served over HTTP, and
`mint_token` to sign RS256 tokens shaped like the Bot Connector's (graph-teams-facts D). Point
the bot at `metadata_url` (`BotAuthConfig.openid_metadata_url`).

Outbound (bot -> Bot Connector): an Entra-like token endpoint served over TLS at
`login_url` = `https://127.0.0.1:P/adfs`. MSAL, which botbuilder uses for the outbound token,
insists on https and runs instance discovery against login.microsoftonline.com for any tenant
but `adfs` (stack-check 2c), hence the path. The certificate is self-signed for 127.0.0.1;
point `REQUESTS_CA_BUNDLE` at `ca_bundle` (the certifi roots plus that certificate) so that
`requests`, which MSAL uses, trusts it. Set `BotAuthConfig.channel_login_url = login_url`.

Example::

    with OpenIdStandIn() as openid, pytest.MonkeyPatch.context() as mp:
        mp.setenv("REQUESTS_CA_BUNDLE", openid.ca_bundle)
        config = BotAuthConfig(app_id=APP_ID, app_password="pw",
                               openid_metadata_url=openid.metadata_url,
                               channel_login_url=openid.login_url)
        token = openid.mint_token(APP_ID, service_url)   # -> "Authorization: Bearer <token>"
        ...
        assert openid.token_requests[0]["client_id"] == APP_ID

botbuilder caches the metadata per URL for a day, process-wide
(`JwtTokenExtractor.metadataCache`); every instance has its own port and so its own URL, and
the keys of one instance never change.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

from tests.support.background import BackgroundServer

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
DEFAULT_KID = "test-kid-1"
DEFAULT_ENDORSEMENTS = ("msteams", "emulator")
DEFAULT_OUTBOUND_TOKEN = "outbound-token-1"


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OpenIdStandIn:
    """OpenID metadata + JWKS (HTTP) and an outbound token endpoint (HTTPS), each in a thread."""

    def __init__(
        self,
        *,
        kid: str = DEFAULT_KID,
        endorsements: Sequence[str] = DEFAULT_ENDORSEMENTS,
        issuer: str = BOT_FRAMEWORK_ISSUER,
        outbound_token: str = DEFAULT_OUTBOUND_TOKEN,
    ) -> None:
        self.kid = kid
        self.endorsements = list(endorsements)
        self.issuer = issuer
        self.key = new_rsa_key()
        self._lock = threading.Lock()
        self._outbound_token = outbound_token
        self._token_error: dict[str, Any] | None = None
        self._token_requests: list[dict[str, str]] = []
        self._metadata_requests = 0
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._ca_bundle: str | None = None
        self._http = BackgroundServer(self._metadata_app(), name="openid-metadata")
        self._tls: BackgroundServer | None = None

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> str:
        """Start both servers; return `metadata_url`."""
        self._tmpdir = tempfile.TemporaryDirectory(prefix="openid-standin-")
        ssl_context = self._make_tls_material(self._tmpdir.name)
        self._http.start()
        self._tls = BackgroundServer(self._token_app(), ssl_context=ssl_context, name="token")
        self._tls.start()
        return self.metadata_url

    def stop(self) -> None:
        self._http.stop()
        if self._tls is not None:
            self._tls.stop()
            self._tls = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
            self._ca_bundle = None

    def __enter__(self) -> OpenIdStandIn:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- inbound --------------------------------------------------------------------------

    @property
    def metadata_url(self) -> str:
        return f"http://127.0.0.1:{self._http.port}/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self._http.port}/keys"

    @cached_property
    def other_key(self) -> rsa.RSAPrivateKey:
        """A key that is not in the JWKS: sign with it under `kid` to get a bad signature."""
        return new_rsa_key()

    def mint_token(
        self,
        app_id: str,
        service_url: str,
        *,
        iss: str = BOT_FRAMEWORK_ISSUER,
        exp_offset: int = 3600,
        nbf_offset: int = -60,
        kid: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """An RS256 token as the Bot Connector sends it: iss, aud (the bot's app id),
        serviceurl, nbf, exp. No `ver` claim: botbuilder treats tokens with one as skill or
        Emulator tokens. `extra_claims` with a value of None removes that claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": iss,
            "aud": app_id,
            "serviceurl": service_url,
            "nbf": now + nbf_offset,
            "exp": now + exp_offset,
        }
        for name, value in (extra_claims or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return jwt.encode(
            claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid}
        )

    @property
    def metadata_requests(self) -> int:
        """How often the OpenID metadata document was fetched."""
        with self._lock:
            return self._metadata_requests

    def _metadata_app(self) -> web.Application:
        async def openid_configuration(_request: web.Request) -> web.Response:
            with self._lock:
                self._metadata_requests += 1
            return web.json_response(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": "https://invalid.example/v1/authorize",
                    "jwks_uri": self.jwks_url,
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                }
            )

        async def keys(_request: web.Request) -> web.Response:
            jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
            jwk.update({"kid": self.kid, "use": "sig", "endorsements": self.endorsements})
            return web.json_response({"keys": [jwk]})

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", openid_configuration)
        app.router.add_get("/keys", keys)
        return app

    # -- outbound -------------------------------------------------------------------------

    @property
    def login_url(self) -> str:
        """The authority for `BotAuthConfig.channel_login_url`."""
        if self._tls is None:
            raise RuntimeError("OpenIdStandIn is not started")
        return f"https://127.0.0.1:{self._tls.port}/adfs"

    @property
    def ca_bundle(self) -> str:
        """Path of a PEM bundle (certifi roots + the stand-in's certificate) for
        REQUESTS_CA_BUNDLE."""
        if self._ca_bundle is None:
            raise RuntimeError("OpenIdStandIn is not started")
        return self._ca_bundle

    @property
    def outbound_token(self) -> str:
        with self._lock:
            return self._outbound_token

    def set_outbound_token(self, token: str) -> None:
        with self._lock:
            self._outbound_token = token

    def fail_token_requests(
        self, error: str = "invalid_client", description: str = "AADSTS7000215: Invalid client"
    ) -> None:
        """Answer every token request with 401 and an OAuth error, as Entra does for a wrong
        secret. `allow_token_requests()` undoes it."""
        with self._lock:
            self._token_error = {"error": error, "error_description": description}

    def allow_token_requests(self) -> None:
        with self._lock:
            self._token_error = None

    @property
    def token_requests(self) -> list[dict[str, str]]:
        """The form fields of every token request (client_id, grant_type, scope, ...)."""
        with self._lock:
            return [dict(fields) for fields in self._token_requests]

    def _token_app(self) -> web.Application:
        async def authority_metadata(_request: web.Request) -> web.Response:
            base = self.login_url
            return web.json_response(
                {
                    "issuer": base,
                    "authorization_endpoint": f"{base}/oauth2/authorize",
                    "token_endpoint": f"{base}/oauth2/token",
                }
            )

        async def token(request: web.Request) -> web.Response:
            form = {key: str(value) for key, value in (await request.post()).items()}
            with self._lock:
                self._token_requests.append(form)
                error = self._token_error
                access_token = self._outbound_token
            if error is not None:
                return web.json_response(error, status=401)
            return web.json_response(
                {"token_type": "Bearer", "expires_in": 3600, "access_token": access_token}
            )

        app = web.Application()
        app.router.add_get("/adfs/.well-known/openid-configuration", authority_metadata)
        app.router.add_post("/adfs/oauth2/token", token)
        return app

    def _make_tls_material(self, directory: str) -> ssl.SSLContext:
        """A self-signed certificate for 127.0.0.1 and a CA bundle that trusts it."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_path = os.path.join(directory, "cert.pem")
        key_path = os.path.join(directory, "key.pem")
        with open(cert_path, "wb") as fh:
            fh.write(cert_pem)
        with open(key_path, "wb") as fh:
            fh.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        # Keep the public roots in the bundle so that REQUESTS_CA_BUNDLE does not break other
        # https calls made by the same process.
        bundle_path = os.path.join(directory, "ca-bundle.pem")
        roots = b""
        try:
            import certifi

            with open(certifi.where(), "rb") as fh:
                roots = fh.read()
        except ImportError:
            pass
        with open(bundle_path, "wb") as fh:
            fh.write(roots.rstrip(b"\n") + b"\n" + cert_pem)
        self._ca_bundle = bundle_path
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        return context
