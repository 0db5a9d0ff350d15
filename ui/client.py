"""HTTP client of the gateway API, used by the browser chat like any other client.

Every call acts for one signed-in user (headers ``X-Kit-User`` and ``X-Kit-Role``, plus the UI's
service key when the gateway has keys). Network and HTTP failures become :class:`ApiError` with a
``kind`` the pages translate; no httpx exception reaches the browser.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kit import sse

CLIENT_HEADER = "X-Kit-Client-Address"  # the browser's address, for the gateway's sign-in throttle


@dataclass(frozen=True)
class Who:
    """The signed-in user the UI acts for."""

    user: str
    role: str  # user, admin or auditor
    groups: tuple[str, ...] = ()  # need-to-know groups the sign-in portal gave (proxy sign-in)


class ApiError(Exception):
    """A failed call. ``kind`` is one of: unreachable, timeout, auth, not_acknowledged, forbidden,
    blocked, too_large, invalid, not_found, busy, closed, engine, server."""

    def __init__(self, kind: str, message: str = "", status: int | None = None, detail: dict[str, Any] | None = None):
        super().__init__(message or kind)
        self.kind = kind
        self.message = message
        self.status = status
        self.detail = detail or {}


def _kind(status: int, etype: str, message: str) -> str:
    if status == 401:
        return "auth"
    if status == 403:
        return "not_acknowledged" if "acknowledge" in message and "charter" in message else "forbidden"
    if status == 413:
        return "too_large"
    if status == 422 and etype == "personal_data_blocked":
        return "blocked"
    if status in (400, 422):
        return "invalid"
    if status == 404:
        return "not_found"
    if status == 429:
        return "busy"
    if status == 503 and etype == "service_unavailable":
        return "closed"
    if status == 503:
        return "engine"
    return "server"


def error_from_response(response: httpx.Response) -> ApiError:
    try:
        err = response.json().get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    message = str(err.get("message") or response.reason_phrase or "")
    etype = str(err.get("type") or "")
    if response.status_code == 429 and response.headers.get("retry-after", "").isdigit():
        err = {**err, "retry_after": int(response.headers["retry-after"])}
    return ApiError(_kind(response.status_code, etype, message), message, response.status_code, err)


def wrong_questions(message: str) -> list[int]:
    """Question numbers the gateway says were answered wrong (from its 403 message)."""
    found = re.search(r"question\(s\)\s+([\d,\s]+)\s+of the check", message)
    return [int(n) for n in re.findall(r"\d+", found.group(1))] if found else []


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        read_timeout_s: float = 300.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.seen: dict[str, dict[str, Any]] = {}  # the gateway's last answer about each user (GET /v1/me)
        self.timeout = httpx.Timeout(timeout_s, connect=5.0)
        self.stream_timeout = httpx.Timeout(read_timeout_s, connect=5.0, write=30.0, pool=10.0)
        self._http = httpx.Client(
            base_url=self.base_url, timeout=self.timeout, transport=transport, trust_env=False, follow_redirects=False
        )

    def close(self) -> None:
        self._http.close()

    def headers(self, who: Who | None) -> dict[str, str]:
        out: dict[str, str] = {"Accept": "application/json"}
        if who is not None:
            out["X-Kit-User"] = who.user
            if who.role:
                out["X-Kit-Role"] = who.role
            if who.groups:
                out["X-Kit-Groups"] = ",".join(who.groups)
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out

    def _call(self, method: str, path: str, who: Who | None, body: Any = None, **kw: Any) -> Any:
        try:
            headers = {**self.headers(who), **kw.pop("headers", {})}
            response = self._http.request(method, path, headers=headers, json=body, **kw)
        except httpx.TimeoutException as exc:
            raise ApiError("timeout", str(exc)) from None
        except httpx.HTTPError as exc:
            raise ApiError("unreachable", str(exc)) from None
        if response.status_code >= 400:
            raise error_from_response(response)
        try:
            return response.json()
        except ValueError:
            raise ApiError("server", "invalid_json", response.status_code) from None

    # --- public endpoints -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """{status, model, chat_open}; an engine that is down answers 503 with the same body."""
        try:
            response = self._http.get("/health", headers=self.headers(None))
        except httpx.TimeoutException as exc:
            raise ApiError("timeout", str(exc)) from None
        except httpx.HTTPError as exc:
            raise ApiError("unreachable", str(exc)) from None
        try:
            data = response.json()
        except ValueError:
            raise ApiError("server", "invalid_json", response.status_code) from None
        if response.status_code == 503:
            raise ApiError("engine", str(data.get("status", "")), 503, data)
        if response.status_code >= 400:
            raise error_from_response(response)
        return dict(data)

    # --- sign-in (the gateway keeps the user store) ------------------------------------------------

    def login(self, user: str, password: str) -> str | None:
        """The user's role when the password is right, else None."""
        data = self.sign_in(user, password)
        return str(data["role"]) if data else None

    def sign_in(self, user: str, password: str, address: str | None = None) -> dict[str, Any] | None:
        """{user, role, session_stamp} when the password is right, else None. ``address``: the browser's, for
        the gateway's per-address throttle (it takes it only from a service key). Throttled: ApiError "busy"
        whose detail holds retry_after."""
        headers = {CLIENT_HEADER: address[:64]} if address else {}
        try:
            data = self._call("POST", "/v1/auth/login", None, {"user": user, "password": password}, headers=headers)
        except ApiError as err:
            if err.status in (401, 422):
                return None
            raise
        return dict(data)

    def oidc_event(self, who: Who | None, event: str, reason: str = "") -> None:
        """Report an OpenID Connect sign-in (login), its refusal (login_failed) or a sign-out (logout) for the
        gateway's audit log; `who` is the user as the provider's claims describe them, when known."""
        self._call("POST", "/v1/auth/oidc", who, {"event": event, "reason": reason[:200]})

    def whois(self, user: str) -> dict[str, Any]:
        """What the gateway knows of this user: role, whether it is a known account, when it last changed."""
        return dict(self._call("GET", "/v1/me", Who(user, "")))

    def role_of(self, user: str) -> str | None:
        """The role the gateway gives this user, or None when it is not a known user."""
        data = self.whois(user)
        self.seen[user] = data
        return str(data["role"]) if data.get("known") else None

    def charter(self, who: Who) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/charter", who))

    def acknowledge(self, who: Who, version: str, answers: list[int]) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/charter/acknowledge", who, {"version": version, "quiz_answers": answers}))

    def scan(self, who: Who, text: str) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/privacy/scan", who, {"text": text}))

    def feedback(
        self,
        who: Who,
        kind: str,
        rating: int | None,
        comment: str,
        conversation_id: str | None = None,
        model: str | None = None,
        answer_id: str | None = None,
    ) -> dict[str, Any]:
        body = {"kind": kind, "rating": rating, "comment": comment, "conversation_id": conversation_id, "model": model,
                "answer_id": answer_id}
        return dict(self._call("POST", "/v1/feedback", who, body))

    # --- history --------------------------------------------------------------------------------

    def conversations(self, who: Who) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/conversations", who))

    def new_conversation(self, who: Who, title: str) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/conversations", who, {"title": title[:200]}))

    def conversation(self, who: Who, cid: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/conversations/{cid}", who))

    def delete_conversation(self, who: Who, cid: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/v1/conversations/{cid}", who))

    def delete_all(self, who: Who) -> dict[str, Any]:
        return dict(self._call("DELETE", "/v1/conversations", who))

    def export_me(self, who: Who) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/me/export", who))

    # --- admin and auditor ----------------------------------------------------------------------

    def stats(self, who: Who) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/admin/stats", who))

    def usage(self, who: Who, start: str, end: str, by: str) -> dict[str, Any]:
        """Usage figures per day or week (GET /v1/admin/usage); empty dates: the gateway's default period."""
        query = {k: v for k, v in (("from", start), ("to", end), ("by", by)) if v}
        return dict(self._call("GET", "/v1/admin/usage", who, params=query))

    def usage_csv(self, who: Who, start: str, end: str, by: str) -> bytes:
        """The same figures as a CSV file (GET /v1/admin/usage?format=csv)."""
        try:
            response = self._http.get("/v1/admin/usage", headers=self.headers(who),
                                      params={"from": start, "to": end, "by": by, "format": "csv"})
        except httpx.TimeoutException as exc:
            raise ApiError("timeout", str(exc)) from None
        except httpx.HTTPError as exc:
            raise ApiError("unreachable", str(exc)) from None
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.content

    def verify_audit(self, who: Who) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/admin/audit/verify", who))

    def admin_feedback(self, who: Who) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/admin/feedback", who))

    def bench_report(self, who: Who) -> dict[str, Any]:
        """The latest published benchmark report: {generated_at, summary (Markdown), html}."""
        return dict(self._call("GET", "/v1/admin/bench", who))

    def set_chat(self, who: Who, open_: bool, message: str) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/admin/chat", who, {"open": open_, "message": message}))

    # --- documents (listing for everyone's groups; upload and removal for admins) ----------------

    def documents(self, who: Who) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/documents", who))

    def upload_documents(
        self, who: Who, files: list[tuple[str, Path]], groups: list[str], collection: str | None
    ) -> dict[str, Any]:
        """Send files (shown name, local path) for ingest; returns the ingest report."""
        data: dict[str, Any] = {"group": groups}
        if collection:
            data["collection"] = collection
        handles = [(name, path.open("rb")) for name, path in files]
        try:
            parts = [("file", (name, fh, "application/octet-stream")) for name, fh in handles]
            return dict(self._call("POST", "/v1/documents", who, data=data, files=parts, timeout=self.stream_timeout))
        finally:
            for _, fh in handles:
                fh.close()

    def remove_document(self, who: Who, doc_id: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/v1/documents/{doc_id}", who))

    def upload_file(self, who: Who, name: str, path: Path) -> dict[str, Any]:
        """Attach a file (shown name, local path) to the user's conversation: the gateway's file object."""
        with path.open("rb") as fh:
            return dict(self._call("POST", "/v1/files", who, data={"purpose": "user_data"},
                                   files=[("file", (name, fh, "application/octet-stream"))],
                                   timeout=self.stream_timeout))

    def delete_file(self, who: Who, file_id: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/v1/files/{file_id}", who))

    # --- chat -----------------------------------------------------------------------------------

    def chat_stream(
        self,
        who: Who,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        conversation_id: str | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        documents: bool = False,
        files: list[str] | None = None,
        task: dict[str, str] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[tuple[str, Any]]:
        """Stream one answer. Yields ("meta", kit), ("progress", {task, done, total, pages}), ("delta", text),
        ("error", message) and finally ("done", finish_reason) or ("stopped", None). Stopping closes the HTTP
        stream, which makes the gateway cancel the generation. ``files``: ids of attached files, added to the last
        user message; ``task``: {"task": summarise | translate | correct, "target_language": fr | en}."""
        if files:
            last = messages[-1]
            parts = [{"type": "text", "text": last["content"]}] if last["content"] else []
            messages = [*messages[:-1], {"role": last["role"], "content": [
                *parts, *({"type": "file", "file": {"file_id": f}} for f in files)]}]  # type: ignore[dict-item]
        body: dict[str, Any] = {"messages": messages, "stream": True, "max_tokens": max_tokens}
        if conversation_id:
            body["conversation_id"] = conversation_id
        if temperature is not None:
            body["temperature"] = temperature
        if seed is not None:
            body["seed"] = seed
        if documents or task:
            body["kit"] = {**({"documents": True} if documents else {}), **(task or {})}
        finish: str | None = None
        try:
            with self._http.stream(
                "POST", "/v1/chat/completions", headers=self.headers(who), json=body, timeout=self.stream_timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                for event in sse.events(response.iter_lines(), skip_invalid=True):
                    if should_stop():
                        yield ("stopped", None)
                        return
                    if "error" in event:
                        yield ("error", str((event["error"] or {}).get("message", "")))
                        continue
                    if event.get("object") == "kit.progress":
                        yield ("progress", (event.get("kit") or {}).get("progress") or {})
                        continue
                    if "kit" in event:  # with the answer's id, which feedback on it names
                        yield ("meta", {**event["kit"], "answer_id": event.get("id")})
                    for choice in event.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            yield ("delta", text)
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
        except httpx.TimeoutException as exc:
            raise ApiError("timeout", str(exc)) from None
        except httpx.HTTPError as exc:
            raise ApiError("unreachable", str(exc)) from None
        yield ("done", finish)
