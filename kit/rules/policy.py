"""The usage rules enforced in the gateway, for the browser chat and API clients alike.

Who is calling (API key, or the front end acting for its signed-in user), whether they acknowledged
the current charter, whether the chat is open, and what happens to personal data in prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kit.config import Settings, is_loopback_host
from kit.errors import ConfigError, PolicyError
from kit.rules.keys import find_key, key_user, list_keys

if TYPE_CHECKING:
    from kit.rules.privacy import PolicyOutcome
    from kit.rules.state import GatewayState

Role = Literal["user", "admin", "auditor", "service"]
USER_HEADER = "x-kit-user"
ROLE_HEADER = "x-kit-role"

# Public texts behind the rules, linked from the chat's "About" panel and the support pack.
SOURCES = [
    {"title": "CNIL — IA générative : questions-réponses (2024)",
     "url": "https://www.cnil.fr/fr/les-questions-reponses-de-la-cnil-sur-lutilisation-dun-systeme-dintelligence-artificielle-generative"},
    {"title": "ANSSI — Recommandations de sécurité pour un système d'IA générative (2024)",
     "url": "https://cyber.gouv.fr/publications/recommandations-de-securite-pour-un-systeme-dia-generative"},
    {"title": "EU AI Act — Regulation (EU) 2024/1689, Art. 4 and 50",
     "url": "https://eur-lex.europa.eu/eli/reg/2024/1689/oj"},
]


class AuthError(PolicyError):
    """No valid credentials (HTTP 401)."""


@dataclass
class Identity:
    user: str
    role: Role
    via: str  # "key", "service", "local"

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise PolicyError(f"this needs the role {' or '.join(roles)}; you are signed in as {self.role}.")


@dataclass
class ChatOutcome:
    messages: list[dict[str, Any]]
    categories: list[str] = field(default_factory=list)
    actions: dict[str, str] = field(default_factory=dict)
    warned: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    @property
    def pii_action(self) -> str:
        for action in ("block", "mask", "warn"):
            if any(a == action for a in self.actions.values()):
                return action
        return "allow" if self.categories else ""


class Gate:
    """Applies the configuration's policy to one request."""

    def __init__(self, settings: Settings, state: GatewayState) -> None:
        settings.require_purpose()
        settings.check_engine_contract()
        srv = settings.server
        self.settings = settings
        self.state = state
        self.charter = settings.charter()
        if not is_loopback_host(srv.host) and not list_keys(settings) and not srv.allow_insecure_bind:
            raise ConfigError(
                f"server.host is {srv.host}, reachable from other machines, and no API key exists: create one with "
                "`kit keys create NAME`, bind to 127.0.0.1, or pass --insecure-no-auth if this network is trusted."
            )

    # identity
    def identify(self, headers: dict[str, str]) -> Identity:
        keys = list_keys(self.settings)
        auth = headers.get("authorization", "")
        claimed_user = headers.get(USER_HEADER, "").strip()[:200]
        claimed_role = headers.get(ROLE_HEADER, "user").strip()
        if claimed_role not in ("user", "admin", "auditor"):
            claimed_role = "user"
        if not keys:
            # No key configured: single-operator mode on loopback (enforced at start-up); a bearer token sent
            # by an OpenAI client out of habit is ignored, as llama.cpp's server does.
            return Identity(claimed_user or "local", claimed_role, "local")  # type: ignore[arg-type]
        if auth.lower().startswith("bearer "):
            key = find_key(keys, auth[7:].strip())
            if key is None:
                raise AuthError("the API key is not valid (revoked or mistyped): ask an administrator for a key.")
            if key.role == "service" and claimed_user:
                from kit.rules.users import get_role

                stored = get_role(self.settings.home, claimed_user)
                return Identity(claimed_user, stored or claimed_role, "service")  # type: ignore[arg-type]
            return Identity(key_user(key.name), key.role, "key")
        raise AuthError("an API key is required: send it as 'Authorization: Bearer <key>' "
                        "(an administrator creates one with `kit keys create NAME`).")

    # charter
    def acknowledged(self, ident: Identity) -> str | None:
        return self.state.store.acknowledged(ident.user, self.charter["version"])

    def acknowledge(self, ident: Identity, version: str, quiz_answers: list[int] | None) -> str:
        if version != self.charter["version"]:
            raise PolicyError(f"charter version {version} is not the current one ({self.charter['version']}): "
                              "read the charter again (GET /v1/charter) and acknowledge that version.")
        quiz = self.settings.policy.quiz
        if quiz and ident.via != "key":
            answers = quiz_answers or []
            wrong = [i + 1 for i, q in enumerate(quiz) if i >= len(answers) or answers[i] != q.answer]
            if wrong:
                raise PolicyError(f"question(s) {', '.join(map(str, wrong))} of the check are not answered right: "
                                  "read the guide again and retry.")
        return self.state.store.acknowledge(ident.user, version)

    def require_open_and_acknowledged(self, ident: Identity) -> None:
        closed = self.state.store.flag("chat_closed")
        if closed:
            raise ChatClosedError(closed.get("message") or "the assistant is closed by an administrator for now.")
        if self.acknowledged(ident) is None:
            raise PolicyError(
                f"acknowledge the usage charter (version {self.charter['version']}) before using the assistant: "
                "read it at GET /v1/charter, then POST /v1/charter/acknowledge with that version "
                "(in the browser chat, the welcome screen does it)."
            )

    # personal data
    def apply_pii(self, messages: list[dict[str, Any]]) -> ChatOutcome:
        """Scan user messages and apply the action of each category found."""
        from kit.rules.privacy import apply_policy, get_detector

        detector = get_detector()
        policy = self.settings.policy
        out = ChatOutcome(messages=[])
        outcomes: list[PolicyOutcome] = []
        for msg in messages:
            if msg["role"] != "user" or not msg["content"]:
                out.messages.append(msg)
                continue
            findings = detector.scan(msg["content"])
            result = apply_policy(msg["content"], findings, dict(policy.pii_actions), policy.pii_default_action)
            outcomes.append(result)
            out.messages.append({**msg, "content": result.text})
        for r in outcomes:
            for cat in r.categories:
                if cat not in out.categories:
                    out.categories.append(cat)
                out.actions[cat] = r.actions[cat]
            out.blocked += [c for c in r.blocked if c not in out.blocked]
            out.warned += [c for c in r.warned if c not in out.warned]
            out.masked += [c for c in r.masked if c not in out.masked]
        out.categories.sort()
        return out


class ChatClosedError(PolicyError):
    """An administrator closed the chat (degraded mode): HTTP 503."""
