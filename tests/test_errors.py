"""One error module: every kit error has an explicit HTTP status, bad input gets a 4xx (never a 500), and
groups (and collections) follow one name rule for users and documents alike. Real gateway on 127.0.0.1
with an echo engine, real document index and user store."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from echo_engine import start_echo_gateway
from helpers import ServerHandle

import kit
from kit.errors import KitError


def _kit_modules() -> Iterator[str]:
    for info in pkgutil.walk_packages(kit.__path__, "kit."):
        if not info.name.endswith("__main__") and not info.name.startswith("kit.migrations"):
            yield info.name


def _all_subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _kit_error_classes() -> list[type[KitError]]:
    for name in _kit_modules():
        try:
            importlib.import_module(name)
        except ImportError:  # an optional extra that is not installed
            continue
    return sorted({c for c in _all_subclasses(KitError) if c.__module__.startswith(("kit.", "ui."))},
                  key=lambda c: c.__qualname__)


def test_every_kit_error_has_an_explicit_status() -> None:
    from kit.gateway.errors import kit_error_response

    classes = _kit_error_classes()
    assert len(classes) >= 25
    missing = [c.__qualname__ for c in classes if "status" not in vars(c)]
    assert not missing, f"no explicit status: {missing}"
    for cls in classes:
        params = inspect.signature(cls.__init__).parameters
        exc = cls("what went wrong", retry_after=3) if "retry_after" in params else cls("what went wrong")
        response = kit_error_response(exc)
        assert response.status_code == vars(cls)["status"], cls.__qualname__


def test_error_classes_live_in_one_module_with_error_names() -> None:
    classes = _kit_error_classes()
    assert {c.__module__ for c in classes} == {"kit.errors"}
    assert all(c.__name__.endswith("Error") for c in classes), [c.__name__ for c in classes]


@pytest.mark.parametrize(("name", "status"), [("DocumentError", 400), ("IndexStoreError", 503),
                                              ("EmbeddingModelError", 503)])
def test_document_errors_are_not_server_errors(name: str, status: int) -> None:
    import kit.errors
    from kit.gateway.errors import kit_error_response

    response = kit_error_response(getattr(kit.errors, name)("what went wrong; what to do"))
    assert response.status_code == status


GOOD = ["équipe", "rh", "Service_Voirie-2", "a.b", "ÉQUIPE-ÎLE", "x" * 64]
BAD = ["bad group!", "", "   ", "a b", "x" * 65, "é/../x", "rh;drop", "tab\tname"]


@pytest.mark.parametrize("name", GOOD)
def test_one_group_rule_accepts(name: str) -> None:
    import kit.documents.ingest
    import kit.gateway.uploads
    import kit.storage.users
    from kit.documents.ingest import check_name
    from kit.storage.users import check_groups

    assert kit.documents.ingest.check_name is kit.gateway.uploads.check_name is kit.storage.users.check_name
    assert check_groups([name]) == [name]
    assert check_name("group", name) == name
    assert check_name("collection", name) == name


@pytest.mark.parametrize("name", BAD)
def test_one_group_rule_refuses(name: str) -> None:
    from kit.documents.ingest import check_name
    from kit.errors import UsageError
    from kit.storage.users import check_groups

    with pytest.raises(UsageError, match="group"):
        check_groups([name])
    for kind in ("group", "collection"):
        with pytest.raises(UsageError, match=kind):
            check_name(kind, name)


def test_a_user_in_group_with_accents(kit_env: Path) -> None:
    from kit.storage.users import add_user, get_groups

    add_user(kit_env, "zoe", "user", "a long enough password", ["équipe"])
    assert get_groups(kit_env, "zoe") == ["équipe"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    base = tmp_path_factory.mktemp("errors")
    old = os.environ.get("KIT_HOME")
    handle, stop = start_echo_gateway(base / "home", base / "kit.yaml")
    yield handle
    stop()
    if old is not None:
        os.environ["KIT_HOME"] = old


def _upload(gw: ServerHandle, **data: str) -> httpx.Response:
    files = [("file", ("note.txt", "Le télétravail est possible deux jours par semaine.".encode(), "text/plain"))]
    return httpx.post(gw.url + "/v1/documents", headers=gw.headers("root", "admin"), files=files, data=data,
                      timeout=180)


@pytest.mark.parametrize("field", ["group", "collection"])
def test_upload_with_a_bad_name_is_a_400(gw: ServerHandle, field: str) -> None:
    r = _upload(gw, **{field: "bad group!"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert field in error["message"] and "invalide" in error["message"]
    assert error["param"] == field


def test_upload_in_a_group_with_accents(gw: ServerHandle) -> None:
    r = _upload(gw, group="équipe", collection="générale")
    assert r.status_code == 200, r.text
    listed = httpx.get(gw.url + "/v1/documents", headers=gw.headers("root", "admin")).json()["data"]
    assert any("équipe" in d["groups"] for d in listed), listed


def test_the_cli_uses_the_same_rule_for_users_and_documents(kit_env: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kit.cli.main import cli
    from kit.errors import UsageError
    from kit.storage.users import get_groups

    runner = CliRunner()
    r = runner.invoke(cli, ["users", "add", "zoe", "--group", "équipe", "--password-stdin"],
                      input="a long enough password\n")
    assert r.exit_code == 0, r.output
    assert get_groups(kit_env, "zoe") == ["équipe"]
    r = runner.invoke(cli, ["users", "add", "yann", "--group", "bad group!", "--password-stdin"],
                      input="a long enough password\n")
    assert isinstance(r.exception, UsageError) and "bad group!" in str(r.exception)
    note = tmp_path / "note.txt"
    note.write_text("Le télétravail est possible deux jours par semaine.", encoding="utf-8")
    r = runner.invoke(cli, ["docs", "ingest", str(note), "--group", "bad group!"])
    assert isinstance(r.exception, UsageError) and "bad group!" in str(r.exception)


# --- hostile bodies that once gave a 500 ----------------------------------------------------------

def _chat(text: str = "Say hello.") -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 4, "temperature": 0}


@pytest.mark.parametrize("raw", [
    b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": ' + b"9" * 5000 + b"}",
    b'{"messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 4}',
])
def test_hostile_json_gets_a_400(gw: ServerHandle, raw: bytes) -> None:
    h = {**gw.headers("alice"), "Content-Type": "application/json"}
    r = httpx.post(gw.url + "/v1/chat/completions", headers=h, content=raw)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"]


def test_lone_surrogate_in_titles_and_scans_gets_a_400(gw: ServerHandle) -> None:
    h = {**gw.headers("alice"), "Content-Type": "application/json"}
    for path, raw in (("/v1/conversations", b'{"title": "x\\udfff"}'), ("/v1/privacy/scan", b'{"text": "\\ud800"}')):
        r = httpx.post(gw.url + path, headers=h, content=raw)
        assert r.status_code == 400, (path, r.text)


def test_unknown_field_in_acknowledge_is_named(gw: ServerHandle) -> None:
    charter = httpx.get(gw.url + "/v1/charter", headers=gw.headers("erin")).json()
    r = httpx.post(gw.url + "/v1/charter/acknowledge", headers=gw.headers("erin"),
                   json={"version": charter["version"], "answers": [0, 1, 1]})
    assert r.status_code == 422 and "answers" in r.json()["error"]["message"]
    r = httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers("erin"), json=_chat())
    assert r.status_code == 403 and "quiz_answers" in r.json()["error"]["message"]
