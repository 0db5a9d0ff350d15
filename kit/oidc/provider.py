"""The OpenID Connect provider as the chat and the gateway see it.

Its metadata comes from ``<issuer>/.well-known/openid-configuration``; its signing keys from the ``jwks_uri``,
kept in memory and fetched again when a token names a key id not seen yet (the provider rotated its keys),
at most once every few seconds so that a stream of forged tokens cannot make kit hammer the provider. Tokens
are checked with joserfc: an asymmetric signature by one of the provider's keys (never ``none`` nor a shared
secret), then ``iss``, ``aud``, ``exp``, ``iat``, ``nbf`` and, for an ID token, the ``nonce`` of the sign-in,
with ``ui.oidc.clock_skew_s`` of tolerance.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from kit.config import Oidc
from kit.errors import ConfigError, ProviderError, SignInError

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
METADATA_TTL_S = 3600.0
REFETCH_KEYS_AFTER_S = 5.0  # a key id not seen yet fetches the keys again, at most this often
TIMEOUT_S = 10.0


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


def read_secret(path: str | None) -> str | None:
    """The client secret from ``client_secret_file`` (None for a public client)."""
    if not path:
        return None
    try:
        secret = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"ui.oidc.client_secret_file {path} cannot be read ({exc.strerror}): write the client "
                          "secret the identity provider gave into it, readable by kit only (chmod 600).") from None
    if not secret:
        raise ConfigError(f"ui.oidc.client_secret_file {path} is empty: write the client secret into it.")
    return secret


class Provider:
    """One OpenID Connect provider; thread-safe. Nothing is fetched before the first use."""

    def __init__(self, oidc: Oidc, redirect_url: str = "", *, secret: str | None = None,
                 transport: httpx.BaseTransport | None = None, clock: Callable[[], float] = time.time) -> None:
        self.oidc, self.redirect_url, self.secret, self.clock = oidc, redirect_url, secret, clock
        self.issuer = oidc.issuer.rstrip("/")
        self._http = httpx.Client(timeout=httpx.Timeout(TIMEOUT_S), transport=transport, trust_env=False,
                                  follow_redirects=False)
        self._lock = threading.Lock()
        self._meta: dict[str, Any] | None = None
        self._meta_at = 0.0
        self._keys: Any = None
        self._keys_at = float("-inf")

    @classmethod
    def from_settings(cls, settings: Any, **kw: Any) -> Provider:
        oidc = settings.ui.oidc
        return cls(oidc, settings.oidc_redirect_url(), secret=read_secret(oidc.client_secret_file), **kw)

    def close(self) -> None:
        self._http.close()

    # --- the provider's documents ----------------------------------------------------------------------------

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderError(f"the identity provider cannot be reached ({what}: {url}: {type(exc).__name__}): "
                                "check ui.oidc.issuer and the network, then try again.") from None
        if response.status_code != 200:
            raise ProviderError(f"the identity provider answered {response.status_code} for its {what} ({url}): "
                                "check ui.oidc.issuer.")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ProviderError(f"the identity provider's {what} ({url}) is not a JSON object: check ui.oidc.issuer.")
        return data

    def metadata(self) -> dict[str, Any]:
        """The discovery document (fetched once an hour); its issuer must be the configured one."""
        with self._lock:
            if self._meta is not None and self.clock() - self._meta_at < METADATA_TTL_S:
                return self._meta
        meta = self._get_json(self.issuer + "/.well-known/openid-configuration", "discovery document")
        if str(meta.get("issuer", "")).rstrip("/") != self.issuer:
            raise ProviderError(f"the provider at {self.issuer} calls itself {meta.get('issuer')!r}: set "
                                "ui.oidc.issuer to exactly the issuer its discovery document names.")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(meta.get(key), str):
                raise ProviderError(f"the provider's discovery document has no {key}.")
        with self._lock:
            self._meta, self._meta_at = meta, self.clock()
        return meta

    def keys(self, unknown_kid: bool = False) -> Any:
        """The provider's signing keys (a joserfc KeySet); fetched again when a token names an unknown key id."""
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        with self._lock:
            fresh = self.clock() - self._keys_at < REFETCH_KEYS_AFTER_S
            if self._keys is not None and (not unknown_kid or fresh):
                return self._keys
        jwks = self._get_json(self.metadata()["jwks_uri"], "signing keys")
        public = [k for k in jwks.get("keys") or [] if isinstance(k, dict) and k.get("use", "sig") == "sig"
                  and k.get("kty") in ("RSA", "EC", "OKP") and "d" not in k]
        try:
            keys = KeySet.import_key_set({"keys": public})
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ProviderError(f"the provider's signing keys cannot be read ({exc}).") from None
        with self._lock:
            self._keys, self._keys_at = keys, self.clock()
        return keys

    # --- tokens ----------------------------------------------------------------------------------------------

    def _decode(self, token: str, algorithms: list[str]) -> Any:
        from joserfc import jwt
        from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError, MissingKeyError

        if not isinstance(token, str) or token.count(".") != 2:
            raise SignInError("the token is not a signed JWT.")
        for unknown_kid in (False, True):
            try:
                return jwt.decode(token, self.keys(unknown_kid), algorithms=algorithms)
            except (InvalidKeyIdError, MissingKeyError):
                continue  # perhaps a new key of the provider: fetch its keys again, once
            except BadSignatureError:
                raise SignInError("the token's signature does not match the identity provider's keys.") from None
            except JoseError as exc:
                raise SignInError(f"the token cannot be read ({exc.error or type(exc).__name__}).") from None
        raise SignInError("the token is signed by a key the identity provider does not publish.")

    def _algorithms(self, field: str) -> list[str]:
        offered = self.metadata().get(field)
        chosen = [a for a in offered if a in ASYMMETRIC] if isinstance(offered, list) else []
        return chosen or ["RS256"]

    def _check(self, claims: dict[str, Any], audience: str, expiring: bool = True, **extra: Any) -> None:
        from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
        from joserfc.jwt import JWTClaimsRegistry

        registry = JWTClaimsRegistry(
            now=lambda: int(self.clock()), leeway=self.oidc.clock_skew_s,
            iss={"essential": True, "value": self.metadata()["issuer"]},
            aud={"essential": True, "value": audience}, exp={"essential": expiring}, sub={"essential": True}, **extra)
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise SignInError("the token has expired: sign in again.") from None
        except (InvalidClaimError, MissingClaimError) as exc:
            raise SignInError(f"the token's claim {exc.claim!r} is missing or not the expected one "
                              f"({exc.error}).") from None
        except JoseError as exc:
            raise SignInError(f"the token's claims are refused ({exc.error}).") from None
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") not in (None, audience):
            raise SignInError("the token was issued to another client (azp).")

    def verify_id_token(self, token: str, nonce: str | None) -> dict[str, Any]:
        """The claims of an ID token issued to this client (``nonce``: the sign-in's; None after a refresh)."""
        claims = dict(self._decode(token, self._algorithms("id_token_signing_alg_values_supported")).claims)
        extra: dict[str, Any] = {"iat": {"essential": True}}
        if nonce is not None:
            extra["nonce"] = {"essential": True, "value": nonce}
        self._check(claims, self.oidc.client_id, **extra)
        return claims

    def verify_access_token(self, token: str) -> dict[str, Any]:
        """The claims of a JWT access token issued for the gateway (``api_audience``, default the client id)."""
        decoded = self._decode(token, list(ASYMMETRIC))
        if str(decoded.header.get("typ", "")).lower() in ("id_token", "jwt+id"):
            raise SignInError("an ID token is not an access token.")
        claims = dict(decoded.claims)
        self._check(claims, self.oidc.api_audience or self.oidc.client_id)
        return claims

    # --- the Authorization Code flow --------------------------------------------------------------------------

    def authorization_url(self, state: str, nonce: str, challenge: str) -> str:
        scopes = ["openid", *[s for s in self.oidc.scopes if s != "openid"]]
        query = {"response_type": "code", "client_id": self.oidc.client_id, "redirect_uri": self.redirect_url,
                 "scope": " ".join(scopes), "state": state, "nonce": nonce, "code_challenge": challenge,
                 "code_challenge_method": "S256"}
        endpoint = self.metadata()["authorization_endpoint"]
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)

    def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        meta = self.metadata()
        auth: tuple[str, str] | None = None
        form = {**form, "client_id": self.oidc.client_id}
        if self.secret is not None:
            methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
            if "client_secret_basic" in methods:
                auth = (self.oidc.client_id, self.secret)
            else:
                form["client_secret"] = self.secret
        try:
            response = self._http.post(meta["token_endpoint"], data=form, auth=auth or httpx.USE_CLIENT_DEFAULT,
                                       headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderError("the identity provider's token endpoint cannot be reached "
                                f"({type(exc).__name__}).") from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code != 200 or not isinstance(data, dict):
            error = data.get("error") if isinstance(data, dict) else None
            if response.status_code in (400, 401) and error:
                raise SignInError(f"the identity provider refused the exchange ({error}): sign in again.")
            raise ProviderError(f"the identity provider's token endpoint answered {response.status_code}.")
        return data

    def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        """The tokens for an authorization code (with its PKCE verifier)."""
        return self._token_request({"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": self.redirect_url, "code_verifier": verifier})

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        """New tokens for a refresh token; SignInError when the provider ended the user's session or access."""
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def userinfo(self, access_token: str, subject: str) -> dict[str, Any]:
        """The userinfo claims (plain JSON, or a JWT signed by the provider as ProConnect sends); {} when the
        provider has no userinfo endpoint. Their ``sub`` must be the ID token's."""
        url = self.metadata().get("userinfo_endpoint")
        if not isinstance(url, str):
            return {}
        try:
            response = self._http.get(url, headers={"Authorization": f"Bearer {access_token}",
                                                    "Accept": "application/json, application/jwt"})
        except httpx.HTTPError as exc:
            raise ProviderError("the identity provider's userinfo endpoint cannot be reached "
                                f"({type(exc).__name__}).") from None
        if response.status_code != 200:
            raise ProviderError(f"the identity provider's userinfo endpoint answered {response.status_code}.")
        claims: Any = None
        if response.headers.get("content-type", "").split(";")[0].strip() == "application/jwt":
            claims = dict(self._decode(response.text.strip(), list(ASYMMETRIC)).claims)
            self._check(claims, self.oidc.client_id, expiring=False)  # a signed answer need not expire
        else:
            try:
                claims = response.json()
            except ValueError:
                pass
        if not isinstance(claims, dict):
            raise ProviderError("the identity provider's userinfo answer is not a JSON object.")
        if claims.get("sub") != subject:
            raise SignInError("the userinfo answer is about another user than the ID token (sub).")
        return claims

    def end_session_url(self, id_token: str | None, after: str | None) -> str | None:
        """Where to send the browser to end the provider's session too; None when it has no end-session endpoint."""
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except ProviderError:
            return None
        if not isinstance(endpoint, str):
            return None
        query = {"client_id": self.oidc.client_id}
        if id_token:
            query["id_token_hint"] = id_token
        if after:
            query["post_logout_redirect_uri"] = after
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)
