"""The usage rules enforced in the gateway, for the browser chat and API clients alike.

Who is calling (API key, or the front end acting for its signed-in user), whether they acknowledged
the current charter, whether the chat is open, and what happens to personal data in prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kit.config import Settings, is_loopback_host
from kit.errors import AuthError, ChatClosedError, ConfigError, NoKeyExposedError, PolicyError
from kit.oidc.bearer import BearerTokens, looks_like_jwt
from kit.storage.keys import find_key, key_user, list_keys

if TYPE_CHECKING:
    from kit.rules.privacy import Finding, PolicyOutcome
    from kit.rules.privacy.detector import ScanStore
    from kit.storage.state import GatewayState

Role = Literal["user", "admin", "auditor", "service"]
USER_HEADER = "x-kit-user"
ROLE_HEADER = "x-kit-role"
GROUPS_HEADER = "x-kit-groups"  # a front end passes the groups its sign-in gave (proxy header), comma-separated
LOCAL_OPERATOR = "local"
_SEPARATOR = "\x00\n"  # between texts policed together (no document text holds a NUL)

# Public texts behind the rules, linked from the chat's "About" panel and the support pack.
SOURCES = [
    {"title": "CNIL — IA générative : questions-réponses (2024)",
     "url": "https://www.cnil.fr/fr/les-questions-reponses-de-la-cnil-sur-lutilisation-dun-systeme-dintelligence-artificielle-generative"},
    {"title": "ANSSI — Recommandations de sécurité pour un système d'IA générative (2024)",
     "url": "https://cyber.gouv.fr/publications/recommandations-de-securite-pour-un-systeme-dia-generative"},
    {"title": "EU AI Act — Regulation (EU) 2024/1689, Art. 4 and 50",
     "url": "https://eur-lex.europa.eu/eli/reg/2024/1689/oj"},
]


@dataclass
class Identity:
    user: str
    role: Role
    via: str  # "key", "service", "local", "oidc" (the identity provider's access token)
    groups: list[str] = field(default_factory=list)  # need-to-know: documents of these groups (and public)

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
        if srv.oidc_bearer and not settings.ui.oidc.issuer.strip():
            raise ConfigError("server.oidc_bearer is on but ui.oidc.issuer is empty: name the identity provider whose "
                              "access tokens the gateway accepts (and ui.oidc.api_audience, the audience they carry).")
        self.bearer = BearerTokens(settings) if srv.oidc_bearer else None
        self.charter = settings.charter()
        user_keys = [k for k in list_keys(settings) if k.role != "service"]
        if not is_loopback_host(srv.host) and not user_keys and not srv.allow_insecure_bind:
            raise ConfigError(
                f"server.host is {srv.host}, reachable from other machines, and no API key exists: create one with "
                "`kit keys create NAME`, bind to 127.0.0.1, or pass --insecure-no-auth if this network is trusted."
            )

    # identity
    def identify(self, headers: dict[str, str]) -> Identity:
        """Who is calling. A user key names its owner; a service key (a front end) speaks for the user it
        names, within the role the user store gives that user; with server.oidc_bearer, the identity provider's
        access token names its user; without any user key, a caller with no key is the single local operator.
        Identity headers from anyone but a service key are ignored."""
        keys = list_keys(self.settings)
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        key = find_key(keys, token) if token else None
        if token and key is None:  # perhaps created a moment ago by another process (`kit keys create`, `kit ui`)
            keys = list_keys(self.settings, fresh=True)
            key = find_key(keys, token)
        if key is None and self.bearer is not None and looks_like_jwt(token):
            found = self.bearer.account(token)  # the identity provider's access token (server.oidc_bearer)
            groups = self.groups_for(found.user, ",".join(found.groups))  # the provider's, plus the user store's
            return Identity(found.user, found.role, "oidc", groups)  # type: ignore[arg-type]
        if key is not None and key.role == "service":
            claimed_user = headers.get(USER_HEADER, "").strip()[:200]
            if not claimed_user:
                return Identity(key_user(key.name), "service", "key")
            role = self.role_for(claimed_user, headers.get(ROLE_HEADER, ""))
            groups = self.groups_for(claimed_user, headers.get(GROUPS_HEADER, ""))
            return Identity(claimed_user, role, "service", groups)
        if key is not None:
            return Identity(key_user(key.name), key.role, "key", list(key.groups))
        if any(k.role != "service" for k in keys):
            if auth:
                raise AuthError("the API key is not valid (revoked or mistyped): ask an administrator for a key.")
            raise AuthError("an API key is required: send it as 'Authorization: Bearer <key>' "
                            "(an administrator creates one with `kit keys create NAME`).")
        srv = self.settings.server
        if not is_loopback_host(srv.host) and not srv.allow_insecure_bind:
            raise NoKeyExposedError(f"no API key exists while the server is bound to {srv.host}, reachable from other "
                               "machines: it refuses every request until an administrator creates one with "
                               "`kit keys create NAME` (or binds server.host to 127.0.0.1).")
        # Single-operator mode on loopback; a bearer token sent by an OpenAI client out of habit is ignored.
        return Identity(LOCAL_OPERATOR, srv.local_operator_role, "local")

    def groups_for(self, user: str, claimed: str = "") -> list[str]:
        """A user's need-to-know groups: the user store's, plus those the front end's sign-in passed."""
        from kit.storage.users import get_groups

        extra = [g.strip() for g in claimed.split(",") if g.strip()][:64]
        return sorted(set(get_groups(self.settings.home, user)) | {g[:64] for g in extra})

    def role_for(self, user: str, claimed: str = "") -> Role:
        """The role a front end may give `user`: the user store's (local accounts, proxy users registered with
        `kit users add`), the configured one for the local operator, else user. Claiming more is refused, except,
        with ui.auth: oidc, a role that ui.oidc.roles gives to some value of the provider's role claim."""
        from kit.storage.users import get_role

        claimed = claimed.strip()
        if self.settings.ui.auth == "oidc" and claimed in self.settings.ui.oidc.roles.values():
            return claimed  # type: ignore[return-value]  # the provider's claims, mapped by ui.oidc.roles
        stored = get_role(self.settings.home, user)
        allowed: Role = stored if stored in ("user", "admin", "auditor") else (  # type: ignore[assignment]
            self.settings.server.local_operator_role if user == LOCAL_OPERATOR else "user")
        if claimed and claimed != allowed and claimed != "user":
            raise PolicyError(f"{user} has the role {allowed}, not {claimed}: an administrator grants roles with "
                              "`kit users add NAME --role ROLE` on the gateway.")
        return "user" if claimed == "user" else allowed

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
                "read it at GET /v1/charter, then POST /v1/charter/acknowledge with the body "
                '{"version": "<its version>", "quiz_answers": [<the index of the right choice for each question>]} '
                "(in the browser chat, the welcome screen does it)."
            )

    # personal data
    def apply_pii(self, messages: list[dict[str, Any]], ident: Identity | None = None) -> ChatOutcome:
        """Scan every message the client sent, whatever its role (system, assistant, user), and apply
        the action of each category found: one blocked category blocks the request, a masked one is
        masked in the message that holds it, and the outcome lists the categories of all messages.

        The one exemption goes by identity, not by role: the browser chat's own system prompt
        (``policy.system_prompt`` in one of its languages, unchanged) sent through a ``service`` key."""
        if not self.settings.policy.pii_detection:  # turned off in kit.yaml: nothing scanned, nothing changed
            return ChatOutcome(messages=list(messages))
        from kit.rules.privacy import get_detector

        own, scanned = self._to_scan(messages, ident)
        return self._outcome(messages, own, scanned, get_detector().scan_cached_many(scanned))  # one pass: the new

    def apply_pii_remembered(self, messages: list[dict[str, Any]], ident: Identity | None = None) -> ChatOutcome | None:
        """``apply_pii`` when every message to scan was scanned before (the detector's memo: a chat's earlier
        turns, a resent request), without scanning: cheap enough for the event loop. None otherwise."""
        if not self.settings.policy.pii_detection:
            return self.apply_pii(messages, ident)
        from kit.rules.privacy import loaded_detector

        detector = loaded_detector()  # never load the models here: the caller may be the event loop
        own, scanned = self._to_scan(messages, ident)
        results = None if detector is None else detector.remembered(scanned)
        return None if results is None else self._outcome(messages, own, scanned, results)

    def _to_scan(self, messages: list[dict[str, Any]], ident: Identity | None) -> tuple[set[str], list[str]]:
        """The exempt texts (see ``apply_pii``), and the contents to scan."""
        own = self._own_system_prompts(ident)
        return own, [msg["content"] for msg in messages if msg["content"] and msg["content"] not in own]

    def _outcome(self, messages: list[dict[str, Any]], own: set[str], scanned: list[str],
                 results: list[list[Finding]]) -> ChatOutcome:
        """The policy applied to each message, given the findings of each scanned content."""
        findings = dict(zip(scanned, results, strict=True))
        out = ChatOutcome(messages=[])
        outcomes: list[PolicyOutcome] = []
        for msg in messages:
            content = msg["content"]
            if not content or content in own:
                out.messages.append(msg)
                continue
            result = self.pii_policy(content, findings[content])
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

    def apply_pii_texts(self, texts: list[str], store: ScanStore | None = None) -> list[PolicyOutcome] | None:
        """The configured action of each category found in each text that is not a message (a document excerpt,
        its heading), as for a message; the placeholders are numbered over all the texts together, so that one
        value has one placeholder across the excerpts of a request. ``store``: findings kept from earlier scans
        (the document index keeps its excerpts'). None when detection is turned off."""
        if not self.settings.policy.pii_detection:
            return None
        import dataclasses

        from kit.rules.privacy import get_detector

        found = get_detector().scan_cached_many(texts, store)
        outcomes = [self.pii_policy(text, findings) for text, findings in zip(texts, found, strict=True)]
        # one numbering of the placeholders over all the texts: [IBAN_CODE_1] is the same value wherever it shows
        joined, shifted, offset = _SEPARATOR.join(texts), [], 0
        for text, findings in zip(texts, found, strict=True):
            shifted += [dataclasses.replace(f, start=f.start + offset, end=f.end + offset) for f in findings]
            offset += len(text) + len(_SEPARATOR)
        pieces = self.pii_policy(joined, shifted).text.split(_SEPARATOR)
        if len(pieces) == len(texts) and not any(_SEPARATOR in t for t in texts):
            outcomes = [dataclasses.replace(o, text=piece) for o, piece in zip(outcomes, pieces, strict=True)]
        return outcomes

    def mask_for_storage(self, text: str) -> PolicyOutcome | None:
        """``text`` as it may be kept in a store others read (a conversation title, a feedback comment): every
        category whose action is warn, mask or block is masked, those allowed stay. None when detection is off.

        Warn lets the user send a value to the model knowingly, in the moment; a stored label is shown later,
        out of that moment (lists, administrators' views), and never needs the value."""
        if not self.settings.policy.pii_detection or not text.strip():
            return None
        from kit.rules.privacy import PII_TYPES, apply_policy, get_detector

        policy = self.settings.policy
        allowed = {kind for kind in PII_TYPES if policy.pii_actions.get(kind, policy.pii_default_action) == "allow"}
        actions: dict[str, Any] = {kind: "allow" if kind in allowed else "mask" for kind in PII_TYPES}
        return apply_policy(text, get_detector().scan_cached(text), actions, "mask")

    def pii_policy(self, text: str, findings: list[Finding]) -> PolicyOutcome:
        """The configured action for each category among ``findings`` (a scan of ``text``)."""
        from kit.rules.privacy import apply_policy

        policy = self.settings.policy
        return apply_policy(text, findings, dict(policy.pii_actions), policy.pii_default_action)

    def _own_system_prompts(self, ident: Identity | None) -> set[str]:
        """The configured system prompt's texts when the browser chat's service key sends them."""
        if ident is None or ident.via != "service":
            return set()
        prompt = self.settings.policy.system_prompt
        return {text for text in (prompt.fr, prompt.en) if text}
