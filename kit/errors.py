"""Error types of the kit, all in this one module.

Every error a user can meet is one of these classes. Each also subclasses the matching standard
exception so callers may catch either. Messages say what went wrong and what to do next; the CLI
prints them on one line (``KIT_DEBUG=1`` shows the traceback). Each class declares the HTTP ``status``
and the OpenAI-style ``code`` the gateway answers with (``tests/test_errors.py`` checks every class has
its own); an instance may carry the request field at fault (``param``) and, for 429 and 503, the seconds
to wait (``retry_after``).
"""

from __future__ import annotations

import math
from urllib.parse import urlsplit, urlunsplit


class KitError(Exception):
    """Base class: a failure the user can fix. Exit code 1 in the CLI; HTTP 500 when nothing more precise."""

    exit_code = 1
    status = 500
    code = "server_error"
    retry_after: int | None = None

    def __init__(self, message: str = "", *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UsageError(KitError, ValueError):
    """The command or request was malformed. Exit code 2."""

    exit_code = 2
    status = 400
    code = "invalid_request_error"


class ConfigError(KitError, ValueError):
    """The configuration file or an environment override is invalid."""

    status = 500


class CatalogError(KitError, ValueError):
    """models.yaml has an invalid entry, or a model name is unknown."""

    status = 500


class ModelNotInstalledError(KitError, FileNotFoundError):
    """The model is in the catalogue but not installed under $KIT_HOME."""

    status = 500


class IntegrityError(KitError):
    """A file's sha256 differs from the one recorded: the file changed or is corrupt."""

    status = 500


class UnsafeFormatError(KitError, ValueError):
    """A model source uses a format that can run code (pickle) or needs remote code."""

    status = 500


class DownloadError(KitError, ConnectionError):
    """A download failed or the hub (or its mirror) could not be reached."""

    status = 500


class EngineError(KitError, RuntimeError):
    """The inference engine failed to load or to run (HTTP 503)."""

    status = 503
    code = "engine_unavailable"
    retry_after = 2


class ContextOverflowError(KitError, ValueError):
    """A prompt does not fit in the model's context window (HTTP 400)."""

    status = 400
    code = "context_length_exceeded"


class QueueFullError(KitError, RuntimeError):
    """The engine's waiting queue is full; retry later (HTTP 429)."""

    status = 429
    code = "rate_limit_exceeded"
    retry_after = 2


class PolicyError(KitError, PermissionError):
    """A request breaks the usage policy (not acknowledged, blocked personal data, chat closed): HTTP 403."""

    status = 403
    code = "permission_error"


class AuthError(PolicyError):
    """No valid credentials (HTTP 401)."""

    status = 401
    code = "authentication_error"


class SignInError(AuthError):
    """The identity provider's answer or token is refused (bad signature, expired, another audience, a state
    that this chat did not issue, a domain not allowed): HTTP 401."""

    status = 401
    code = "sign_in_refused"

    def __init__(self, message: str = "", *, param: str | None = None, key: str = "",
                 values: dict[str, object] | None = None) -> None:
        super().__init__(message, param=param)
        self.key, self.values = key, dict(values or {})  # a front end's own reason: its translation key


class ProviderError(KitError, ConnectionError):
    """The OpenID Connect provider cannot be reached or answers something unusable (HTTP 502)."""

    status = 502
    code = "identity_provider_error"


class NoKeyExposedError(PolicyError):
    """Bound off loopback while no API key exists: every request is refused (HTTP 503)."""

    status = 503
    code = "service_unavailable"
    retry_after = 2


class ChatClosedError(PolicyError):
    """An administrator closed the chat (degraded mode): HTTP 503."""

    status = 503
    code = "service_unavailable"
    retry_after = 2


class PiiBlockedError(PolicyError):
    """The prompt holds personal data whose category is blocked (HTTP 422)."""

    status = 422
    code = "personal_data_blocked"


class AuditError(KitError):
    """The audit log is damaged or could not be written."""

    status = 500


class DiskFullError(KitError, OSError):
    """Not enough free disk space for the operation."""

    status = 500


class BodyTooLargeError(KitError):
    """Request body or message over the configured limit (HTTP 413)."""

    status = 413
    code = "request_too_large"


class ModelNotFoundError(KitError):
    """The request names a model this server does not serve (HTTP 404)."""

    status = 404
    code = "model_not_found"


class NotFoundError(KitError):
    """Nothing of the caller's by that id (HTTP 404); never says whether it belongs to someone else."""

    status = 404
    code = "not_found"


class HostRefusedError(KitError):
    """The Host header names neither the bound address nor an allowed host (HTTP 421, DNS rebinding)."""

    status = 421
    code = "misdirected_request"


class NotJsonError(KitError):
    """A JSON route was sent a body of another type (HTTP 415): a page of another site can send text/plain
    without asking the browser's permission, never application/json."""

    status = 415
    code = "unsupported_media_type"


class TooManyError(KitError):
    """Too many attempts or requests (HTTP 429); ``retry_after`` says when to try again."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class AccountLockedError(TooManyError):
    """An account locked after too many failed sign-ins (HTTP 429), right password or not; ``retry_after`` is
    the number of seconds until the lock ends (an administrator may end it sooner: ``kit users unlock``)."""

    status = 429
    code = "account_locked"


class LimitExceededError(KitError):
    """A usage limit is reached (HTTP 429); ``retry_after`` is the number of seconds until it frees, ``limit``
    the limit reached."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: float, limit: str = "") -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))
        self.limit = limit


class LimitsUnavailableError(KitError, ConnectionError):
    """The shared counter store (Redis) does not answer (HTTP 503)."""

    status = 503
    code = "service_unavailable"
    retry_after = 5


class DocumentError(KitError, ValueError):
    """A file cannot be ingested: unknown type, encrypted, damaged, or without text (HTTP 400). ``reason`` names
    the case for pages that say it in their own words: ``damaged``, ``encrypted``, ``no_text``, ``not_text``,
    ``wrong_format``, ``unsupported``, ``too_large`` or ``unreadable``."""

    status = 400
    code = "invalid_request_error"

    def __init__(self, message: str = "", *, reason: str = "unreadable", param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.reason = reason


class DocumentNotFoundError(KitError, LookupError):
    """No ingested document has this id or path (HTTP 404)."""

    status = 404
    code = "not_found"


class IndexStoreError(KitError, RuntimeError):
    """The document index (SQLite, Chroma) cannot be opened or used (HTTP 503)."""

    status = 503
    code = "service_unavailable"
    retry_after = 5


class EmbeddingModelError(KitError, FileNotFoundError):
    """The embedding model is not installed or cannot be loaded (HTTP 503)."""

    status = 503
    code = "service_unavailable"
    retry_after = 5


class EmbedderMismatchError(KitError, RuntimeError):
    """The documents were embedded by another model than the configured one: `kit docs reindex` (HTTP 503)."""

    status = 503
    code = "service_unavailable"
    retry_after = 60


class AttachmentError(KitError, ValueError):
    """A file attached to a conversation cannot be read: damaged, encrypted, of a type not handled, or over the
    page limit (HTTP 400). The message names the file as it was sent."""

    status = 400
    code = "invalid_file"


class OcrUnavailableError(KitError, RuntimeError):
    """A scanned page or an image needs OCR and Tesseract or its language data is missing (HTTP 503)."""

    status = 503
    code = "ocr_unavailable"


class ServerStartError(KitError, RuntimeError):
    """A reference server of the benchmarks did not start."""

    status = 500


def redact(url: str) -> str:
    """A URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
