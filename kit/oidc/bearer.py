"""The provider's JWT access tokens as bearer tokens of the gateway (``server.oidc_bearer: true``): the token
is checked like an ID token (signature by the provider's keys, issuer, audience ``ui.oidc.api_audience``,
expiry) and its claims are mapped to a user, role and groups exactly as at the chat's sign-in."""

from __future__ import annotations

import threading

from kit.config import Settings
from kit.oidc.claims import Account, account
from kit.oidc.provider import Provider


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and len(token) > 40


class BearerTokens:
    """Checks access tokens; the provider's documents are fetched on first use, then cached."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._provider: Provider | None = None
        self._lock = threading.Lock()

    @property
    def provider(self) -> Provider:
        with self._lock:
            if self._provider is None:
                self._provider = Provider(self.settings.ui.oidc)
            return self._provider

    def account(self, token: str) -> Account:
        """The account a valid access token names; SignInError (401) otherwise, ProviderError when the provider's
        keys cannot be fetched."""
        return account(self.provider.verify_access_token(token), self.settings.ui.oidc)
