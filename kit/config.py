"""Configuration: one validated model for ``kit.yaml``.

The file is found at ``$KIT_CONFIG``, else ``./kit.yaml``, else ``/etc/kit/kit.yaml``; with none of
them the defaults apply. Every key can be overridden by an environment variable
``KIT_<SECTION>__<KEY>`` (for example ``KIT_SERVER__PORT=9000``). Unknown keys are errors that name
the key. Data lives under ``$KIT_HOME`` (default ``~/.local/share/kit``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from kit import defaults
from kit.errors import ConfigError

PiiAction = Literal["allow", "warn", "mask", "block"]
SYSTEM_CONFIG = Path("/etc/kit/kit.yaml")


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
        description="Action per personal-data category: allow, warn, mask or block.",
    )
    pii_default_action: PiiAction = Field(default="warn", description="Action for categories not listed.")
    conversation_retention_days: int = Field(
        default=30, ge=0, description="Days conversations are kept for the history; 0 keeps no text at all."
    )
    audit_retention_days: int = Field(default=180, ge=1, description="Days audit rows are kept (CNIL: 6 to 12 months).")
    log_prompt_text: bool = Field(default=False, description="Store prompt and answer text in the audit log (off).")
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
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        return {"version": digest[:16], **body}


class ApiKey(_Section):
    name: str = Field(description="Who or what uses the key.")
    sha256: str = Field(description="sha256 of the key; the key itself is never stored.")
    role: Literal["user", "admin", "auditor", "service"] = Field(
        default="user",
        description="Role: user, admin, auditor, or service (a front end acting for its signed-in users).")


class Server(_Section):
    host: str = Field(default="127.0.0.1", description="Address the API binds to (loopback by default).")
    port: int = Field(default=8000, ge=1, le=65535, description="Port of the API.")
    api_keys: list[ApiKey] = Field(default_factory=list, description="API keys, stored as hashes.")
    parallel: int = Field(default=8, ge=1, le=64, description="Sequences decoded together (continuous batching).")
    ctx: int = Field(default=4096, ge=256, description="Context length of each sequence, in tokens.")
    gpu_layers: int = Field(default=-1, description="Layers offloaded to the GPU (-1: all, 0: CPU only).")
    threads: int | None = Field(default=None, ge=1, description="CPU threads; default: all cores.")
    batch: int = Field(default=512, ge=32, description="Tokens decoded in one step (prompt chunks share it).")
    max_queue: int = Field(default=64, ge=1, description="Requests waiting beyond 'parallel' before 429.")
    request_timeout_s: float = Field(default=300, gt=0, description="Longest time one request may generate.")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Largest request body accepted (413 above).")
    max_tokens_default: int = Field(default=512, ge=1, description="max_tokens when a request gives none.")
    engine_url: str | None = Field(
        default=None, description="Use this OpenAI-compatible engine (llama-server, vLLM) instead of the built-in one."
    )
    engine_api_key: str | None = Field(default=None, description="Key sent to engine_url, if it needs one.")
    engine_contract_ref: str | None = Field(
        default=None, description="Reference of the processing agreement; required when engine_url is not loopback."
    )
    allow_insecure_bind: bool = Field(
        default=False, description="Allow a non-loopback address without API keys (insecure; for a trusted network)."
    )


class UI(_Section):
    host: str = Field(default="127.0.0.1", description="Address the browser chat binds to.")
    port: int = Field(default=7860, ge=1, le=65535, description="Port of the browser chat.")
    auth: Literal["local", "proxy", "none"] = Field(
        default="none", description="Sign-in: local users, a trusted reverse-proxy header, or none (loopback only)."
    )
    proxy_header: str = Field(default="X-Forwarded-User", description="Header carrying the user name (proxy auth).")
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1"],
                                       description="Addresses allowed to set it.")
    default_language: Literal["fr", "en"] = Field(default="fr", description="Language shown first.")
    server_url: str | None = Field(default=None, description="API the UI talks to; default: this machine's server.")
    service_key_file: str | None = Field(
        default=None, description="File holding the chat's service key for the gateway (the system install sets it); "
        "default: $KIT_HOME/ui-service.key, created on first start.")


class Rag(_Section):
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="sentence-transformers model: the packaged all-MiniLM-L6-v2, a model installed under "
                    "$KIT_HOME/models, or a local folder.")
    chroma_path: str | None = Field(default=None, description="Embedded Chroma folder; default $KIT_HOME/chroma.")
    chroma_url: str | None = Field(default=None, description="Chroma server URL (replaces chroma_path).")
    chunk_size: int = Field(default=800, ge=100, description="Characters per chunk.")
    chunk_overlap: int = Field(default=120, ge=0, description="Characters of a chunk repeated at the start of the next.")
    pii_action: Literal["report", "mask", "refuse"] = Field(
        default="report",
        description="Personal data found in a document at ingest: report it, mask it in the stored text, "
                    "or refuse the file.")
    embedding_threads: int = Field(
        default=1, ge=0,
        description="CPU threads of the embedding model (0: all cores). One keeps query latency steady beside "
                    "the engine; more speed up a large ingest run on an idle machine.")
    top_k: int = Field(default=5, ge=1, le=50, description="Chunks retrieved for a chat with documents.")
    min_similarity: float = Field(
        default=0.3, ge=-1, le=1,
        description="Cosine similarity a chunk needs to be used without enough keywords in common with the "
                    "question (depends on the embedding model; 0.2 more for languages it was not trained on).")


class Models(_Section):
    default: str = Field(default="smollm2-135m-instruct", description="Model served when none is named.")
    catalog: str | None = Field(default=None, description="Path of models.yaml; default: the one shipped with kit.")


class Settings(_Section):
    deployment: Deployment = Field(default_factory=Deployment)
    policy: Policy = Field(default_factory=Policy)
    server: Server = Field(default_factory=Server)
    ui: UI = Field(default_factory=UI)
    rag: Rag = Field(default_factory=Rag)
    models: Models = Field(default_factory=Models)

    source: str | None = Field(default=None, exclude=True, description="File the settings were read from.")
    _home: Path = PrivateAttr(default_factory=lambda: kit_home())

    @property
    def home(self) -> Path:
        """$KIT_HOME as it was when the settings were loaded."""
        return self._home

    def charter(self) -> dict[str, Any]:
        return self.policy.charter(self.deployment)

    def require_purpose(self) -> None:
        """Raise unless deployment.purpose is set (a concrete need comes first)."""
        if not self.deployment.purpose.strip():
            where = self.source or "kit.yaml"
            raise ConfigError(
                f"deployment.purpose is empty in {where}: state the concrete need the assistant serves "
                "(or set KIT_DEPLOYMENT__PURPOSE), then start again."
            )
        if self.deployment.profile == "production":
            c = self.deployment.contacts
            missing = [k for k in ("dpo", "ciso", "business_owner") if not getattr(c, k).strip()]
            if missing:
                raise ConfigError(
                    "profile is production but deployment.contacts."
                    + ", deployment.contacts.".join(missing)
                    + " is empty: name them in kit.yaml."
                )

    def check_engine_contract(self) -> None:
        """A remote engine is allowed only under a processing agreement (engine_contract_ref)."""
        url = self.server.engine_url
        if url and not is_loopback_url(url) and not (self.server.engine_contract_ref or "").strip():
            raise ConfigError(
                f"server.engine_url {url} is not on this machine: prompts would leave it. Set "
                "server.engine_contract_ref to the reference of the processing agreement with its operator."
            )

    def check_ui(self, host: str | None = None) -> None:
        """Refuse a browser chat that would break the rules (one-line errors naming the key)."""
        import ipaddress

        self.require_purpose()
        host = host or self.ui.host
        if self.ui.auth == "none" and not is_loopback_host(host):
            raise ConfigError(
                f"ui.host is {host}, reachable from other machines, while ui.auth is none: set ui.auth to local "
                "(accounts from `kit users add`) or proxy (a trusted SSO reverse proxy), or bind ui.host to 127.0.0.1."
            )
        if self.ui.auth == "proxy" and not self.ui.trusted_proxies:
            raise ConfigError("ui.auth is proxy but ui.trusted_proxies is empty: list the reverse proxy's addresses.")
        for entry in self.ui.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigError(f"ui.trusted_proxies: '{entry}' is not an IP address or network.") from None


def kit_home() -> Path:
    return Path(os.environ.get("KIT_HOME") or Path.home() / ".local/share/kit").expanduser()


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    return is_loopback_host(urlsplit(url).hostname or "")


def config_path() -> Path | None:
    """The configuration file in force, or None when only defaults apply."""
    env = os.environ.get("KIT_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.exists():
            raise ConfigError(f"KIT_CONFIG points to {path}, which does not exist: run `kit config init {path}`.")
        return path
    for path in (Path("kit.yaml"), SYSTEM_CONFIG):
        if path.exists():
            return path
    return None


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    sections = set(Settings.model_fields) - {"source"}
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("KIT_") or "__" not in name:
            continue
        parts = name[4:].lower().split("__")
        if parts[0] not in sections:
            raise ConfigError(f"{name}: unknown section '{parts[0]}' (sections: {', '.join(sorted(sections))}).")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        for key in parts[:-1]:
            node = node.setdefault(key, {})
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _format_error(err: ValidationError, where: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (check its spelling; `kit config init` writes every valid key)")
        elif e["type"] == "missing":
            lines.append(f"{key}: required key is missing")
        else:
            lines.append(f"{key}: {e['msg']}")
    return f"{where}: " + "; ".join(lines)


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read, merge with environment overrides, and validate the configuration."""
    environ = dict(os.environ if environ is None else environ)
    file = Path(path) if path else config_path()
    data: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{file} does not exist: run `kit config init {file}`.") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file} is not valid YAML: {exc}".replace("\n", " ")) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{file} must hold a mapping of sections (deployment, policy, server, ...).")
        data = loaded or {}
    _merge(data, _env_overrides(environ))
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, str(file or "environment"))) from None
    settings.source = str(file) if file else None
    return settings


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective configuration with secrets hidden (for `kit config show`)."""
    data = settings.model_dump(mode="json")
    for key in data["server"]["api_keys"]:
        key["sha256"] = key["sha256"][:8] + "…"
    if data["server"].get("engine_api_key"):
        data["server"]["engine_api_key"] = "***"
    return data


def template() -> str:
    """A commented kit.yaml holding every key with its default and description."""
    lines = [
        "# kit configuration. Every key can be overridden by KIT_<SECTION>__<KEY> in the environment.",
        "# Data lives under $KIT_HOME (default ~/.local/share/kit).",
        "",
    ]
    defaults = Settings().model_dump(mode="json", exclude={"source"})
    defaults["deployment"]["purpose"] = (
        "Aider les agents à rédiger, résumer et reformuler des textes de travail non sensibles."
    )
    defaults["deployment"]["organisation"] = "Mon organisation"
    for section, model in Settings.model_fields.items():
        if section == "source":
            continue
        sub = model.annotation
        lines.append(f"{section}:")
        for key, field in sub.model_fields.items():  # type: ignore[union-attr]
            lines.append(f"  # {field.description}")
            dumped = yaml.safe_dump({key: defaults[section][key]}, allow_unicode=True, sort_keys=False, width=100)
            lines.extend("  " + ln for ln in dumped.rstrip().splitlines())
        lines.append("")
    return "\n".join(lines)
