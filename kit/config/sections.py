"""The sections of kit.yaml as pydantic models: deployment, policy, server, ui, rag, models, limits.
Every field has a description (they become `kit config init`'s comments). kit.config assembles them
into Settings, loads the file and applies the environment. Imports kit.config.defaults only."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kit.config import defaults

PiiAction = Literal["allow", "warn", "mask", "block"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Text(_Section):
    """A user-facing text in French and English."""

    fr: str = Field(description="French text (shown by default).")
    en: str = Field(default="", description="English text; the French one is shown when empty.")

    def get(self, lang: str) -> str:
        return self.en if lang == "en" and self.en else self.fr


def _text(value: Any) -> Any:
    return {"fr": value, "en": value} if isinstance(value, str) else value


class Contacts(_Section):
    dpo: str = Field(default="", description="Data protection officer (DPO): name and e-mail.")
    ciso: str = Field(default="", description="Chief information security officer (CISO).")
    business_owner: str = Field(default="", description="Business owner of the assistant.")
    ethics_referent: str = Field(default="", description="Ethics referent, if any.")
    point_of_contact: str = Field(default="", description="Where staff ask questions or report a problem.")


class Deployment(_Section):
    organisation: str = Field(default="", description="Name of the organisation running the assistant.")
    purpose: str = Field(
        default="",
        description="The concrete need the assistant serves (required: the server and UI refuse to start without it).",
    )
    profile: Literal["evaluation", "production"] = Field(
        default="evaluation", description="'production' requires the DPO, CISO and business-owner contacts."
    )
    contacts: Contacts = Field(default_factory=Contacts, description="Governance contacts.")


class PromptTemplate(_Section):
    name: Text = Field(description="Label shown in the UI.")
    text: Text = Field(description="Text placed in the input box.")

    _fix = field_validator("name", "text", mode="before")(_text)


class QuizQuestion(_Section):
    question: Text = Field(description="The question.")
    choices: list[Text] = Field(description="Possible answers.")
    answer: int = Field(description="Index (from 0) of the right answer in 'choices'.")

    _fix = field_validator("question", mode="before")(_text)

    @field_validator("choices", mode="before")
    @classmethod
    def _fix_choices(cls, value: Any) -> Any:
        return [_text(v) for v in value] if isinstance(value, list) else value


DEFAULT_ALLOWED = [Text(**t) for t in defaults.ALLOWED_USES]
DEFAULT_FORBIDDEN = [Text(**t) for t in defaults.FORBIDDEN_USES]
DEFAULT_TEMPLATES = [PromptTemplate.model_validate(t) for t in defaults.PROMPT_TEMPLATES]
DEFAULT_QUIZ = [QuizQuestion.model_validate(q) for q in defaults.QUIZ]
DEFAULT_PII_ACTIONS: dict[str, PiiAction] = {
    "EMAIL_ADDRESS": "warn",
    "PHONE_NUMBER": "warn",
    "PERSON": "warn",
    "LOCATION": "allow",
    "IP_ADDRESS": "warn",
    "IBAN_CODE": "mask",
    "CREDIT_CARD": "block",
    "FR_NIR": "block",
    "FR_SIRET": "allow",
    "SENSITIVE_HEALTH": "warn",
    "SENSITIVE_RELIGION": "warn",
    "SENSITIVE_POLITICS": "warn",
    "SENSITIVE_UNION": "warn",
    "SENSITIVE_SEXUALITY": "warn",
    "SENSITIVE_ORIGIN": "warn",
    "SENSITIVE_CRIMINAL": "warn",
}


class Policy(_Section):
    allowed_uses: list[Text] = Field(default_factory=lambda: list(DEFAULT_ALLOWED), description="Allowed uses.")
    forbidden_uses: list[Text] = Field(default_factory=lambda: list(DEFAULT_FORBIDDEN), description="Forbidden uses.")
    prompt_templates: list[PromptTemplate] = Field(
        default_factory=lambda: list(DEFAULT_TEMPLATES), description="Prompt templates for approved uses."
    )
    quiz: list[QuizQuestion] = Field(
        default_factory=lambda: list(DEFAULT_QUIZ), description="Questions to pass before first use; empty = none."
    )
    pii_actions: dict[str, PiiAction] = Field(
        default_factory=lambda: dict(DEFAULT_PII_ACTIONS),
        description="Action per personal-data category: allow, warn, mask or block. SENSITIVE_* are the GDPR "
        "article 9 categories about a person (health, religion, political opinions, union membership, sex life or "
        "orientation, ethnic origin, criminal convictions).",
    )
    pii_default_action: PiiAction = Field(default="warn", description="Action for categories not listed.")
    pii_detection: bool = Field(
        default=True, description="Scan every message for personal data before the model sees it. false turns the "
        "scan and its actions off (to measure its cost, or behind another filter): `kit doctor` and `kit report` "
        "say so.")
    conversation_retention_days: int = Field(
        default=30, ge=0, description="Days conversations are kept for the history; 0 keeps no text at all."
    )
    audit_retention_days: int = Field(default=180, ge=1, description="Days audit rows are kept (CNIL: 6 to 12 months).")
    feedback_retention_days: int = Field(default=365, ge=1, description="Days feedback and problem reports are kept.")
    audit_key_file: str | None = Field(default=None, description="Key of the audit log's HMAC chain (32 bytes, mode "
        "0600, created on first use; back it up): default audit.key next to the configuration file, else "
        "~/.config/kit/audit.key; never under $KIT_HOME.")
    pseudonym_key_file: str | None = Field(default=None, description="Key of the users' pseudonyms (same rules; "
        "default pseudonym.key beside audit.key); an older $KIT_HOME/secret.key is moved there.")
    log_prompt_text: bool = Field(default=False, description="Store prompt and answer text in the audit log (off).")
    usage_min_users: int = Field(
        default=5, ge=1, description="Usage figures (the Usage tab, GET /v1/admin/usage, `kit report`) show a count "
        "of distinct users below this as \"< N\", so that no figure describes one person.")
    system_prompt: Text = Field(
        default_factory=lambda: Text(
            fr="Tu es un assistant interne. Réponds en français de façon brève et exacte. "
               "Si tu ne sais pas, dis-le.",
            en="You are an internal assistant. Answer briefly and accurately. If you do not know, say so."),
        description="System prompt placed before every conversation from the UI.",
    )
    max_prompt_chars: int = Field(default=32000, ge=100, description="Longest user message accepted, in characters.")

    _fix = field_validator("system_prompt", mode="before")(_text)

    @field_validator("allowed_uses", "forbidden_uses", mode="before")
    @classmethod
    def _fix_lists(cls, value: Any) -> Any:
        return [_text(v) for v in value] if isinstance(value, list) else value

    def charter(self, deployment: Deployment) -> dict[str, Any]:
        """The charter users acknowledge, with its version (a hash of its content)."""
        body = {
            "purpose": deployment.purpose,
            "allowed_uses": [t.model_dump() for t in self.allowed_uses],
            "forbidden_uses": [t.model_dump() for t in self.forbidden_uses],
            "pii_actions": dict(sorted(self.pii_actions.items())),
            "conversation_retention_days": self.conversation_retention_days,
            "quiz": [q.model_dump() for q in self.quiz],
        }
        if not self.pii_detection:  # users are told; the key is absent when on, so versions stay as they were
            body["pii_detection"] = False
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        return {"version": digest[:16], **body}


class ApiKey(_Section):
    name: str = Field(description="Who or what uses the key.")
    sha256: str = Field(description="sha256 of the key; the key itself is never stored.")
    role: Literal["user", "admin", "auditor", "service"] = Field(
        default="user",
        description="Role: user, admin, auditor, or service (a front end acting for its signed-in users).")
    groups: list[str] = Field(default_factory=list, description="Need-to-know groups: documents it may retrieve.")


class EngineEntry(_Section):
    """One engine of the pool (`server.engines`): kit engines, llama.cpp's llama-server, vLLM."""

    name: str = Field(min_length=1, max_length=64, description="Name shown in /metrics and kit doctor.")
    url: str = Field(description="OpenAI-compatible base URL, e.g. http://10.0.0.11:8100")
    capacity: float = Field(default=1.0, gt=0, description="Relative capacity (e.g. its parallel sequences).")
    api_key: str | None = Field(default=None, description="Key sent to this engine, if it needs one.")
    contract_ref: str | None = Field(default=None, description="Processing agreement; required off this machine.")


class Server(_Section):
    host: str = Field(default="127.0.0.1", description="Address the API binds to (loopback by default).")
    port: int = Field(default=8000, ge=1, le=65535, description="Port of the API.")
    api_keys: list[ApiKey] = Field(default_factory=list, description="API keys, stored as hashes.")
    parallel: int = Field(default=8, ge=1, le=64, description="Sequences decoded together (continuous batching).")
    ctx: int = Field(default=4096, ge=256, description="Context length of each sequence, in tokens.")
    gpu_layers: int = Field(default=-1, description="Layers offloaded to the GPU (-1: all, 0: CPU only).")
    threads: int | None = Field(default=None, ge=1, description="CPU threads; default: all cores.")
    warm_up: bool = Field(default=True, description="Decode once with every sequence at load, so that the first "
                          "burst of requests after a start does not wait for buffers and weights.")
    batch: int = Field(default=512, ge=32, description="Tokens decoded in one step (prompt chunks share it).")
    prefill_chunk: int = Field(default=512, ge=16, description="Prompt tokens read in one step while other "
                               "sequences are answering (up to 'batch'): more reads a long prompt sooner and in "
                               "larger blocks, fewer keeps the pauses short in the answers being written.")
    prompt_cache_mb: int = Field(default=1024, ge=0, description="Host memory (MiB) keeping the state of "
                                 "sequences whose slot serves another request, so that a conversation's next turn "
                                 "or a repeated prompt is not read again (0: off).")
    max_queue: int = Field(default=64, ge=1, description="Requests waiting beyond 'parallel' before 429.")
    request_timeout_s: float = Field(default=300, gt=0, description="Longest time one request may generate.")
    keep_alive_s: int = Field(default=75, ge=1, le=3600, description="Seconds an idle HTTP connection stays open. "
                              "Longer than the idle time of the proxy in front (60 s for most), so that neither "
                              "sends a request on a connection the other is closing.")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Largest request body accepted (413 above).")
    max_tokens_default: int = Field(default=512, ge=1, description="max_tokens when a request gives none.")
    engine_url: str | None = Field(
        default=None, description="Use this OpenAI-compatible engine (llama-server, vLLM) instead of the built-in one."
    )
    engine_api_key: str | None = Field(default=None, description="Key sent to engine_url, if it needs one.")
    engines: list[EngineEntry] = Field(
        default_factory=list, description="A pool of engines (replaces engine_url): a conversation's turns go to "
        "the same one, new ones to the least busy, a failing one leaves the pool until its health check passes.")
    engine_max_failures: int = Field(default=3, ge=1, description="Failures in a row before an engine leaves the pool.")
    engine_probe_s: float = Field(default=5.0, gt=0,
                                  description="Seconds between health checks of engines out of the pool.")
    engine_contract_ref: str | None = Field(
        default=None, description="Reference of the processing agreement; required when engine_url is not loopback."
    )
    allow_insecure_bind: bool = Field(
        default=False, description="Allow a non-loopback address without API keys (insecure; for a trusted network)."
    )
    local_operator_role: Literal["user", "admin"] = Field(
        default="user", description="Role of the single local operator (requests without a key while no user key "
        "exists); identity headers are honoured only from a service key.")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Host names the API answers to besides its bound address (DNS "
        "rebinding: any other Host header gets 421).")
    allowed_origins: list[str] = Field(
        default_factory=list, description="Origins of web pages (https://app.example.org) allowed to send "
        "state-changing requests (POST, PUT, PATCH, DELETE) from a browser; any other page's gets 403. Programs "
        "that send no Origin header are not concerned.")
    oidc_bearer: bool = Field(
        default=False, description="Also accept the OpenID Connect provider's JWT access tokens (ui.oidc) as "
        "bearer tokens, with the same mapping of claims to user, role and groups; API keys keep working.")
    metrics_access: Literal["loopback", "key", "open"] = Field(
        default="loopback", description="Who may read /metrics: loopback clients, holders of an admin, auditor or "
        "service key, or anyone.")


class Oidc(_Section):
    """Sign-in with the organisation's OpenID Connect provider (ui.auth: oidc): ProConnect, Keycloak, Entra ID."""

    issuer: str = Field(default="", description="Issuer URL of the provider (its /.well-known/openid-configuration "
                        "is read from there), e.g. https://auth.example.org/realms/agents.")
    client_id: str = Field(default="", description="Client id of the chat registered at the provider.")
    client_secret_file: str | None = Field(
        default=None, description="File holding the client secret (mode 0600 or 0640, never in kit.yaml); none: a "
        "public client (PKCE only).")
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"],
                              description="Scopes asked for (openid is always added).")
    redirect_url: str | None = Field(
        default=None, description="Address of /auth/oidc/callback as the browser reaches it, registered at the "
        "provider; default: ui.public_url + /auth/oidc/callback.")
    user_claim: str = Field(default="email", description="Claim naming the user in kit (email, preferred_username, "
                            "sub); the audit log keeps only its pseudonym.")
    groups_claim: str = Field(default="groups", description="Claim listing the user's groups (a list or a "
                              "comma-separated string; a dotted path reaches a nested one): they become the kit "
                              "groups of need-to-know at each sign-in. Empty: no groups from the provider.")
    role_claim: str = Field(default="", description="Claim whose values decide the kit role (roles, groups, "
                            "realm_access.roles); empty: everyone is a user.")
    roles: dict[str, Literal["user", "admin", "auditor"]] = Field(
        default_factory=dict, description="Values of role_claim mapped to a kit role, e.g. {kit-admins: admin}; "
        "the highest one matched wins, none matched: user.")
    allowed_domains: list[str] = Field(
        default_factory=list, description="If set, only users whose e-mail (the email claim, else the user_claim) "
                                          "is in one of these domains may sign in.")
    allowed_siret: list[str] = Field(
        default_factory=list, description="If set (ProConnect), only agents whose siret claim is listed may sign in.")
    api_audience: str | None = Field(
        default=None, description="Audience the provider's access tokens carry for the gateway "
        "(server.oidc_bearer); default: client_id.")
    clock_skew_s: int = Field(default=60, ge=0, le=300, description="Clock difference tolerated on exp, iat, nbf.")
    refresh_minutes: float = Field(
        default=15, ge=0, description="Renew a session's claims from the provider (refresh token) after this long; "
        "a group removed at the provider is then lost, a disabled account signed out (0: only at sign-in).")


class UI(_Section):
    host: str = Field(default="127.0.0.1", description="Address the browser chat binds to.")
    port: int = Field(default=7860, ge=1, le=65535, description="Port of the browser chat.")
    auth: Literal["local", "proxy", "oidc", "none"] = Field(
        default="none", description="Sign-in: local users, a trusted reverse-proxy header, the organisation's "
        "OpenID Connect provider (ui.oidc), or none (loopback only)."
    )
    oidc: Oidc = Field(default_factory=Oidc, description="OpenID Connect provider (ui.auth: oidc; "
                       "server.oidc_bearer).")
    proxy_header: str = Field(default="X-Forwarded-User", description="Header carrying the user name (proxy auth).")
    proxy_groups_header: str = Field(default="X-Forwarded-Groups", description="Header carrying the user's "
                                     "need-to-know groups, comma-separated (proxy auth; trusted like the user's).")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses of the reverse proxies allowed to set it (none by default).")
    session_idle_minutes: float = Field(
        default=30, gt=0, le=24 * 60,
        description="Local sign-in: a session unused for this long ends (the sign-in form comes back).")
    session_max_hours: float = Field(
        default=10, gt=0, le=24 * 7,
        description="Local sign-in: a session ends this long after the sign-in, however much it is used.")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Host names the chat answers to besides its bound address and localhost "
        "(the name a reverse proxy passes on; DNS rebinding: any other Host header gets 421).")
    public_url: str | None = Field(
        default=None, description="Address people open the chat at when a reverse proxy serves it "
        "(https://chat.example.org): its name is accepted like allowed_hosts, its origin as the page's own, "
        "and https marks the sign-in cookie Secure.")
    default_language: Literal["fr", "en"] = Field(default="fr", description="Language shown first.")
    server_url: str | None = Field(default=None, description="API the UI talks to; default: this machine's server.")
    max_upload_bytes: int = Field(default=20_000_000, ge=1024, description="Largest file the chat accepts.")
    service_key_file: str | None = Field(
        default=None, description="File holding the chat's service key for the gateway (the system install sets it); "
        "default: $KIT_HOME/ui-service.key, created on first start.")


class Rag(_Section):
    embedding_model: str = Field(
        default="multilingual-e5-small",
        description="Embedding model of the document search: an entry of the catalogue's embedders "
                    "(`kit models list`; the default comes with the install, the others with `kit models pull`), "
                    "or the folder of a sentence-transformers model. Changing it asks for `kit docs reindex`.")
    synonyms_file: str | None = Field(
        default=None, description="The organisation's synonyms (acronyms, local names), one group a line, terms "
        "separated by ';'; default $KIT_HOME/synonyms.txt (none: no synonyms).")
    chroma_path: str | None = Field(default=None, description="Embedded Chroma folder; default $KIT_HOME/chroma.")
    chroma_url: str | None = Field(default=None, description="Chroma server URL (replaces chroma_path).")
    chunk_size: int = Field(default=800, ge=100, description="Characters per chunk.")
    chunk_overlap: int = Field(default=120, ge=0,
                               description="Characters of a chunk repeated at the start of the next.")
    pii_action: Literal["report", "mask", "refuse"] = Field(
        default="report",
        description="Personal data found in a document at ingest: report it, mask it in the stored text, "
                    "or refuse the file.")
    embedding_threads: int = Field(
        default=1, ge=0,
        description="CPU threads of the embedding model (0: all cores). One keeps query latency steady beside "
                    "the engine; more speed up a large ingest run on an idle machine.")
    ingest_threads: int = Field(
        default=0, ge=0,
        description="CPU threads of the embedding model while documents are ingested or reindexed (0: every core). "
                    "Set for those calls only: searches keep embedding_threads.")
    top_k: int = Field(default=5, ge=1, le=50, description="Chunks retrieved for a chat with documents.")
    min_relevance: float = Field(
        default=0.45, ge=0, le=1,
        description="Relevance (0..1, the same scale for every question) the best chunk needs for any source to be "
                    "shown and given to the model (the others need 0.2); below it, no source is found.")


class Attachments(_Section):
    """A staff member's own files in a conversation (`POST /v1/files`, file parts of a chat message)."""

    enabled: bool = Field(default=True, description="Accept files attached to a conversation.")
    max_bytes: int = Field(default=20_000_000, ge=1024, description="Largest file accepted, in bytes (413 above).")
    max_pages: int = Field(default=300, ge=1, description="Most pages read from one file (PDF pages, image frames, "
                           "or parts of about 3,000 characters for formats without pages).")
    max_files_per_user: int = Field(default=50, ge=1, description="Files one user may keep at once.")
    retention_days: int | None = Field(default=None, ge=1, description="Days a file is kept; default: the "
                                       "conversations' retention, or 1 day when no history is kept.")
    ocr: bool = Field(default=True, description="Read scanned PDF pages and images with Tesseract (OCR).")
    ocr_languages: str = Field(default="fra+eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$",
                               description="Tesseract languages, joined by '+' (Debian: tesseract-ocr-fra, -eng).")
    ocr_dpi: int = Field(default=300, ge=72, le=600, description="Resolution of PDF pages rendered for OCR.")
    ocr_timeout_s: float = Field(default=120, gt=0, description="Longest time Tesseract may spend on one page.")

    def days(self, conversation_days: int) -> int:
        """How many days a file is kept."""
        return self.retention_days or max(conversation_days, 1)


class Models(_Section):
    default: str = Field(default="smollm2-135m-instruct", description="Model served when none is named.")
    catalog: str | None = Field(default=None, description="Path of models.yaml; default: the one shipped with kit.")


class RoleLimits(_Section):
    """The limits of one role; 0 means unlimited."""

    requests_per_minute: int = Field(default=30, ge=0, description="Chat and completion requests in any 60 s.")
    lookups_per_minute: int = Field(default=60, ge=0, description="Document searches and personal-data scans in any "
                                    "60 s (the browser chat checks each message before sending it).")
    tokens_per_minute: int = Field(default=20_000, ge=0,
                                   description="Generated tokens (all choices) per minute, counted after each answer.")
    tokens_per_day: int = Field(default=200_000, ge=0, description="Generated tokens per 24 h, counted the same way.")
    concurrent: int | None = Field(
        default=None, ge=0, description="Generations running or queued at once (each of the n choices counts); "
        "keeps one user from filling the engine's shared queue. Default (null): one less than server.parallel "
        "(at least 1), so that one user never holds every sequence; 0: unlimited.")


class Limits(_Section):
    """Abuse limits per user (per key for key holders; users of the browser chat count as themselves), by role.
    Over a limit the request gets 429 with Retry-After. Counters live in this process, or in Redis, shared by
    every gateway, when the environment sets KIT_REDIS_URL (redis://[:password@]host:port/db)."""

    strategy: Literal["moving-window", "fixed-window"] = Field(
        default="moving-window", description="Requests per minute: moving-window (exact: the last 60 s) or "
        "fixed-window (cheaper: the current minute). Token counts always use fixed windows.")
    user: RoleLimits = Field(
        default_factory=RoleLimits,
        description="Limits of the user role, 0 = unlimited: requests_per_minute (chat and completions); "
        "lookups_per_minute (document searches, personal-data scans); tokens_per_minute and "
        "tokens_per_day (generated tokens, counted after each answer; the next request is refused once spent); "
        "concurrent (generations running or queued at once, each of the n choices counting; default: one less "
        "than server.parallel).")
    admin: RoleLimits = Field(
        default_factory=lambda: RoleLimits(requests_per_minute=120, tokens_per_minute=100_000,
                                           tokens_per_day=1_000_000),
        description="Limits of the admin role (the same keys).")
    auditor: RoleLimits = Field(default_factory=RoleLimits, description="Limits of the auditor role (the same keys).")
    service: RoleLimits = Field(default_factory=RoleLimits,
                                description="Limits of a service key calling in its own name (no user named).")
