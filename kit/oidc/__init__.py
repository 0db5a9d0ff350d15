"""OpenID Connect client: the organisation's identity provider (ProConnect, Keycloak, Entra ID).

``provider`` talks to the provider (discovery, JWKS with key rotation, the Authorization Code flow with PKCE,
userinfo, refresh, end of session) and checks its tokens with joserfc; ``claims`` turns verified claims into
a kit account (user, role, need-to-know groups) under ``ui.oidc``. Used by the browser chat for its sign-in and
by the gateway for the provider's access tokens (``server.oidc_bearer``). Imports kit's configuration and
errors only.
"""
