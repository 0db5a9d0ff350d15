"""Configuration: one validated model for ``kit.yaml``.

The file is found at ``$KIT_CONFIG``, else ``./kit.yaml``, else ``/etc/kit/kit.yaml``; with none of
them the defaults apply. Every key can be overridden by an environment variable
``KIT_<SECTION>__<KEY>`` (for example ``KIT_SERVER__PORT=9000``). Unknown keys are errors that name
the key. Data lives under ``$KIT_HOME`` (default ``~/.local/share/kit``).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import Field, PrivateAttr, ValidationError

from kit.config.sections import (  # noqa: F401 - the sections are part of kit.config's surface
    DEFAULT_ALLOWED,
    DEFAULT_FORBIDDEN,
    DEFAULT_PII_ACTIONS,
    DEFAULT_QUIZ,
    DEFAULT_TEMPLATES,
    UI,
    ApiKey,
    Attachments,
    Contacts,
    Deployment,
    Limits,
    Models,
    Oidc,
    PiiAction,
    Policy,
    PromptTemplate,
    QuizQuestion,
    Rag,
    RoleLimits,
    Server,
    Text,
    _Section,
)
from kit.errors import ConfigError

SYSTEM_CONFIG = Path("/etc/kit/kit.yaml")


class Settings(_Section):
    deployment: Deployment = Field(default_factory=Deployment)
    policy: Policy = Field(default_factory=Policy)
    server: Server = Field(default_factory=Server)
    ui: UI = Field(default_factory=UI)
    rag: Rag = Field(default_factory=Rag)
    models: Models = Field(default_factory=Models)
    limits: Limits = Field(default_factory=Limits)
    attachments: Attachments = Field(default_factory=Attachments)

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
        for e in self.server.engines:
            if not is_loopback_url(e.url) and not (e.contract_ref or self.server.engine_contract_ref or "").strip():
                raise ConfigError(
                    f"server.engines: {e.name} ({e.url}) is not on this machine: prompts would leave it. Set its "
                    "contract_ref (or server.engine_contract_ref) to the reference of the processing agreement."
                )
        names = [e.name for e in self.server.engines]
        if len(set(names)) != len(names):
            raise ConfigError("server.engines: every engine needs its own name (they key the routing).")

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
        if self.ui.public_url is not None and origin_netloc(self.ui.public_url) is None:
            raise ConfigError(f"ui.public_url: '{self.ui.public_url}' is not an http or https address such as "
                              "https://chat.example.org.")
        if self.ui.auth == "oidc":
            self.check_oidc()

    def check_oidc(self) -> None:
        """Refuse an OpenID Connect setting that cannot work (the provider itself is checked by `kit doctor`)."""
        o = self.ui.oidc
        for key in ("issuer", "client_id"):
            if not getattr(o, key).strip():
                raise ConfigError(f"ui.auth is oidc but ui.oidc.{key} is empty: copy it from the client registered "
                                  "at the identity provider.")
        if not o.issuer.startswith("https://") and not (o.issuer.startswith("http://") and is_loopback_url(o.issuer)):
            raise ConfigError(f"ui.oidc.issuer '{o.issuer}' must be an https address (http only on this machine).")
        if not self.oidc_redirect_url():
            raise ConfigError("ui.auth is oidc: set ui.oidc.redirect_url (the address of /auth/oidc/callback as "
                              "browsers reach it, registered at the provider) or ui.public_url.")

    def oidc_redirect_url(self) -> str:
        """Where the provider sends the browser back: ui.oidc.redirect_url, else ui.public_url's callback."""
        if self.ui.oidc.redirect_url:
            return self.ui.oidc.redirect_url
        return self.ui.public_url.rstrip("/") + "/auth/oidc/callback" if self.ui.public_url else ""


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


# --- host names and origins (DNS rebinding, cross-site requests) ---------------------------------------------
# A page on another domain may make its own name resolve to 127.0.0.1 (DNS rebinding): the browser then sends
# that name in the Host header. The gateway and the chat accept only the names they are really reached under:
# their bound address, ``localhost``, the IP literals of loopback when bound there, and the configured names.
# ``127.attacker.example`` is a name, not an address.

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
DEFAULT_PORTS = {"http": 80, "https": 443}


def host_name(header: str) -> str:
    """The host part of a Host header, without port or IPv6 brackets, lower case."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def ip_literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address when `name` is written as an IP address (dotted quad or IPv6), else None."""
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def is_loopback_literal(name: str) -> bool:
    ip = ip_literal(name)
    return ip is not None and ip.is_loopback


def host_allowed(header: str | None, bound: str, allowed_hosts: list[str] | tuple[str, ...]) -> bool:
    """Whether a server bound to `bound` answers a request whose Host header is `header`."""
    if header is None:
        return True  # HTTP/1.0 without Host: nothing to rebind
    name = host_name(header)
    allowed = {h.strip().lower() for h in allowed_hosts if h.strip()}
    if name in LOOPBACK_NAMES or name in allowed:
        return True
    if is_loopback_host(bound.strip().lower()):
        return is_loopback_literal(name)  # 127.0.0.2 is this machine; a name starting with 127. is not
    if bound.strip("[]") in WILDCARD_BINDS:
        # every address of the machine (an IP address is never a rebound name), other names unless some are listed
        return not allowed or ip_literal(name) is not None
    return name == host_name(bound)


def origin_netloc(origin: str) -> str | None:
    """``host:port`` of an Origin header (port made explicit), lower case; None when it is not an origin
    of the web (``null``, a file, garbage)."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def same_origin(origin: str, host: str | None) -> bool:
    """Whether an Origin header names the server reached under the Host header `host`. A Host without a
    port is reached on the default port of the scheme the browser used (behind a TLS proxy, 443)."""
    netloc = origin_netloc(origin)
    if netloc is None or not host:
        return False
    value = host.strip().lower()
    has_port = value.rsplit("]", 1)[-1].count(":") == 1 if value.startswith("[") else value.count(":") == 1
    if has_port:
        return netloc == value
    origin_host, _, port = netloc.rpartition(":")
    scheme = origin.strip().lower().split(":", 1)[0]
    return host_name(origin_host) == host_name(value) and int(port) == DEFAULT_PORTS[scheme]


def origin_listed(origin: str, origins: list[str] | tuple[str, ...]) -> bool:
    """Whether an Origin header is one of the configured origins (``https://chat.example.org``), or names a
    configured host name on the default port of its scheme."""
    netloc = origin_netloc(origin)
    if netloc is None:
        return False
    for entry in origins:
        entry = entry.strip()
        if "://" in entry:
            if origin_netloc(entry) == netloc:
                return True
        elif entry and host_name(netloc) == entry.lower().strip("[]") and netloc.endswith((":80", ":443")):
            return True  # a bare name: its pages on the web's usual ports
    return False
