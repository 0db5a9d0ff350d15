"""Several machines, on loopback: PostgreSQL and Redis (throwaway servers), two `kit serve` gateways that share
them and nothing else (each its own $KIT_HOME), and three engines (kit engines, and llama.cpp's llama-server as
the third when scripts/build-reference.sh has built it). Shown, in order: one conversation's turns reach one
engine whatever the gateway (its prompt cache is reused), with or without a conversation id; 24 concurrent
conversations spread over the engines (least busy, counted over both gateways); a rate limit holds across both
gateways; closing the chat on one closes it on the other; kill -9 of an engine under load hangs no request and it
rejoins after restart; kill -9 of a gateway leaves the other serving the same users with their history and
acknowledgements; the audit chain verifies with the rows of both."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from helpers import KIT, EngineProcess, free_port, install_model, redis_running, run_kit, wait_healthy, write_config

from kit.bench.serving import Target
from kit.engine.pool import Member, rendezvous_order

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
LIMITED = 4  # requests per minute of the auditor role, counted across the gateways


@dataclass
class Gateway:
    name: str
    url: str
    proc: subprocess.Popen[bytes]

    def pool(self) -> dict[str, dict[str, float]]:
        text = httpx.get(self.url + "/metrics", timeout=10).text
        out: dict[str, dict[str, float]] = {}
        for metric, name, value in re.findall(r'^kit_pool_engine_(\w+)\{engine="([\w-]+)"\} (\S+)$', text, re.M):
            out.setdefault(name, {})[metric] = float(value)
        return out


@dataclass
class Cluster:
    gateways: list[Gateway]
    engines: dict[str, EngineProcess | Target]  # kit engines, and llama-server when built
    keys: dict[str, str]
    env: dict[str, str]

    def chat(self, gateway: Gateway, user: str, text: str, **extra: object) -> httpx.Response:
        body = {"messages": [{"role": "user", "content": text}], "max_tokens": 6, "temperature": 0, **extra}
        return httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=240,
                          headers={"Authorization": f"Bearer {self.keys[user]}"})

    def affinity(self) -> tuple[float, float]:
        """(follow-up turns, affinity hits) summed over the gateways still running."""
        follow_ups = hits = 0.0
        for gw in self.gateways:
            if gw.proc.poll() is None:
                text = httpx.get(gw.url + "/metrics", timeout=10).text
                follow_ups += float(re.search(r"^kit_pool_affinity_follow_ups_total (\S+)$", text, re.M)[1])
                hits += float(re.search(r"^kit_pool_affinity_hits_total (\S+)$", text, re.M)[1])
        return follow_ups, hits

    def served(self) -> dict[str, float]:
        """Requests each engine answered, summed over the gateways still running."""
        total: dict[str, float] = dict.fromkeys(self.engines, 0.0)
        for gw in self.gateways:
            if gw.proc.poll() is None:
                for name, state in gw.pool().items():
                    total[name] += state["served"]
        return total


def _start_gateway(name: str, home: Path, env: dict[str, str], log: Path) -> Gateway:
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([KIT, "serve", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env={**env, "KIT_HOME": str(home)})
    gw = Gateway(name, f"http://127.0.0.1:{port}", proc)
    wait_healthy(gw.url, proc, log, f"gateway {name}")
    return gw


@pytest.fixture(scope="module")
def cluster(model_store: Path, tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Iterator[Cluster]:
    from kit.bench.servers import find_llama_server, llama_server

    base = tmp_path_factory.mktemp("cluster")
    engine_home = install_model(model_store, base / "engine-home")
    engine_config = write_config(base / "engine.yaml")
    names = ("kit-a", "kit-b") if find_llama_server() else ("kit-a", "kit-b", "kit-c")
    kit_engines = {n: EngineProcess(n, engine_home, engine_config, base / f"engine-{n}.log") for n in names}
    gateways: list[Gateway] = []
    with contextlib.ExitStack() as stack:
        redis_url, _ = stack.enter_context(redis_running(base))
        try:
            for e in kit_engines.values():
                e.start()
            engines: dict[str, EngineProcess | Target] = dict(kit_engines)
            binary = find_llama_server()
            if binary:  # started while the kit engines load
                model = next((model_store / "models").rglob("*.gguf"))
                engines["llama-c"] = stack.enter_context(llama_server(binary, model, threads=1, slots=2, ctx=1024,
                                                                      name="llama-c"))
            for e in kit_engines.values():
                e.wait_ready()
            unlimited = {"requests_per_minute": 0, "tokens_per_minute": 0, "tokens_per_day": 0, "concurrent": 0}
            config = write_config(
                base / "gateway.yaml",
                server={"engines": [{"name": n, "url": e.url, "capacity": 2} for n, e in engines.items()],
                        "engine_max_failures": 2, "engine_probe_s": 1, "ctx": 1024},
                policy={"conversation_retention_days": 30},
                limits={"user": unlimited, "admin": unlimited,
                        "auditor": {**unlimited, "requests_per_minute": LIMITED}})
            env = {**os.environ, "KIT_CONFIG": str(config), "KIT_DATABASE_URL": pg_url,
                   "KIT_REDIS_URL": redis_url, "KIT_HOME": str(base / "admin-home")}
            upgraded = run_kit("db", "upgrade", env=env)
            assert upgraded.returncode == 0, upgraded.stderr
            keys = {}
            for user, role in (("alice", "user"), ("boss", "admin"), ("carol", "auditor")):
                made = run_kit("keys", "create", user, "--role", role, env=env)  # acknowledges the charter
                assert made.returncode == 0, made.stderr
                keys[user] = made.stdout.strip()
            gateways = [_start_gateway(n, base / f"gateway-{n}-home", env, base / f"gateway-{n}.log") for n in "AB"]
            yield Cluster(gateways, engines, keys, env)
        finally:
            for gw in gateways:
                if gw.proc.poll() is None:
                    gw.proc.terminate()
                    gw.proc.wait(timeout=30)
            for e in kit_engines.values():
                e.kill()


def test_a_conversations_turns_reach_one_engine_through_either_gateway(cluster: Cluster) -> None:
    a, b = cluster.gateways
    auth = {"Authorization": f"Bearer {cluster.keys['alice']}"}
    cid = httpx.post(a.url + "/v1/conversations", json={"title": "affinité"}, timeout=30, headers=auth).json()["id"]
    before, affinity_before = cluster.served(), cluster.affinity()
    caches_before = {n: e.metrics()["prompt_tokens_cached"] for n, e in cluster.engines.items()
                     if isinstance(e, EngineProcess)}
    history = [{"role": "system", "content": "Tu es l'assistant du service. Réponds brièvement."}]
    for gw, question in zip((a, b, a), ("Quels sont les horaires ?", "Et le samedi ?", "Sur rendez-vous ?"),
                            strict=True):
        history.append({"role": "user", "content": question})
        r = httpx.post(gw.url + "/v1/chat/completions", timeout=240, headers=auth,
                       json={"messages": history, "max_tokens": 6, "temperature": 0, "conversation_id": cid})
        assert r.status_code == 200, r.text
        history.append({"role": "assistant", "content": r.json()["choices"][0]["message"]["content"]})
    grew = {n: v - before[n] for n, v in cluster.served().items()}
    target = max(grew, key=lambda n: grew[n])
    assert grew == {n: (3.0 if n == target else 0.0) for n in cluster.engines}, grew
    # an idle pool gives the first turn to the first engine by name, a kit engine: its /metrics show the cache
    assert target in caches_before, target
    assert cluster.engines[target].metrics()["prompt_tokens_cached"] > caches_before[target]  # type: ignore[union-attr]
    follow_ups, hits = (after - b4 for after, b4 in zip(cluster.affinity(), affinity_before, strict=True))
    assert (follow_ups, hits) == (2, 2)  # turns 2 (gateway B) and 3 (gateway A): both knew turn 1's engine
    # the turns were stored once each, whichever gateway took them
    got = httpx.get(b.url + f"/v1/conversations/{cid}", headers=auth, timeout=30).json()
    assert [m["role"] for m in got["messages"]] == ["user", "assistant"] * 3
    # with no gateway remembering it (Redis emptied), a later turn goes where every gateway computes: rendezvous
    import redis

    redis.Redis.from_url(cluster.env["KIT_REDIS_URL"]).flushdb()
    expected = rendezvous_order(cid, [Member(n, None, 2.0) for n in cluster.engines])[0].name
    before = cluster.served()
    history.append({"role": "user", "content": "Merci."})
    r = httpx.post(b.url + "/v1/chat/completions", timeout=240, headers=auth,
                   json={"messages": history, "max_tokens": 6, "temperature": 0, "conversation_id": cid})
    assert r.status_code == 200, r.text
    grew = {n: v - before[n] for n, v in cluster.served().items()}
    assert grew[expected] == 1.0 and sum(grew.values()) == 1.0, (expected, grew)


def test_turns_sent_without_an_id_follow_their_conversation_across_gateways(cluster: Cluster) -> None:
    """An OpenAI client resending its history, without a conversation id, alternately to both gateways: the first
    turn goes to the least busy engine, every later turn to the engine that served the previous one (recorded in
    Redis, so the other gateway knows it)."""
    a, b = cluster.gateways
    before = cluster.affinity()

    def conversation(i: int) -> None:
        history = [{"role": "user", "content": f"Demande {i} : comment réserver une salle de réunion ?"}]
        for turn in range(3):
            r = httpx.post((a, b)[(i + turn) % 2].url + "/v1/chat/completions", timeout=240,
                           headers={"Authorization": f"Bearer {cluster.keys['alice']}"},
                           json={"messages": history, "max_tokens": 6, "temperature": 0})
            assert r.status_code == 200, r.text
            history += [{"role": "assistant", "content": r.json()["choices"][0]["message"]["content"]},
                        {"role": "user", "content": f"Précision {turn}"}]

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        list(ex.map(conversation, range(4)))
    follow_ups, hits = (after - b4 for after, b4 in zip(cluster.affinity(), before, strict=True))
    assert (follow_ups, hits) == (8, 8)


def test_concurrent_conversations_spread_over_the_engines(cluster: Cluster) -> None:
    """24 conversations started at once through both gateways: each first turn goes to the least busy engine,
    counting the requests of both gateways (Redis), so the three engines share them."""
    a, b = cluster.gateways
    auth = {"Authorization": f"Bearer {cluster.keys['alice']}"}
    cids = [httpx.post((a, b)[i % 2].url + "/v1/conversations", json={"title": f"c{i}"}, headers=auth,
                       timeout=30).json()["id"] for i in range(24)]
    before = cluster.served()

    def one(i: int) -> int:
        return cluster.chat((a, b)[i % 2], "alice", f"Question {i} : où déposer le formulaire {i * 7} ?",
                            conversation_id=cids[i], max_tokens=24).status_code

    with concurrent.futures.ThreadPoolExecutor(24) as ex:
        assert list(ex.map(one, range(24))) == [200] * 24
    grew = {n: v - before[n] for n, v in cluster.served().items()}
    assert sum(grew.values()) == 24 and all(v >= 4 for v in grew.values()), grew


def test_new_conversations_go_to_the_least_busy_engine_counting_every_gateway(redis_server: tuple[str, object]) -> None:
    """In-flight counts shared in Redis: a gateway sees the requests the other one has running, and forgets those of
    a gateway that stopped announcing itself (killed) after the time-to-live."""
    from kit.engine.inflight import SharedInFlight
    from kit.engine.pool import EnginePool

    url = redis_server[0]
    busy_gateway = SharedInFlight(url, gateway_id="gateway-1", ttl_s=1.5)
    busy_gateway.add("kit-a", 3)
    pool = EnginePool([Member("kit-a", None, 2.0), Member("kit-b", None, 2.0)], model_name="m",
                      shared=SharedInFlight(url, gateway_id="gateway-2", ttl_s=1.5))
    alone = EnginePool([Member("kit-a", None, 2.0), Member("kit-b", None, 2.0)], model_name="m")
    try:
        assert pool.shared.counts(["kit-a", "kit-b"]) == {"kit-a": 3, "kit-b": 0}
        assert [m.name for m in pool.order(None)] == ["kit-b", "kit-a"]  # the other gateway's load counts
        assert [m.name for m in alone.order(None)] == ["kit-a", "kit-b"]  # on its own counts: a tie, by name
        time.sleep(2.0)  # gateway-1 is silent (as after kill -9): its requests stop counting
        pool.shared.heartbeat()
        assert pool.shared.counts(["kit-a", "kit-b"]) == {"kit-a": 0, "kit-b": 0}
    finally:
        pool._closing.set()
        alone._closing.set()


def test_a_rate_limit_holds_across_both_gateways(cluster: Cluster) -> None:
    a, b = cluster.gateways
    codes = [cluster.chat((a, b)[i % 2], "carol", f"Vérification {i}").status_code for i in range(LIMITED + 2)]
    assert codes[:LIMITED] == [200] * LIMITED and codes[LIMITED:] == [429, 429], codes


def test_closing_the_chat_on_one_gateway_closes_it_on_the_other(cluster: Cluster) -> None:
    a, b = cluster.gateways
    boss = {"Authorization": f"Bearer {cluster.keys['boss']}"}
    r = httpx.post(a.url + "/v1/admin/chat", json={"open": False, "message": "Maintenance jusqu'à 14 h."},
                   headers=boss, timeout=30)
    assert r.status_code == 200, r.text
    started = time.monotonic()
    closed = cluster.chat(b, "alice", "Bonjour")
    assert closed.status_code == 503 and "Maintenance jusqu'à 14 h." in closed.text
    assert time.monotonic() - started < 1.0 + 5  # seen at once (the request itself takes the rest)
    assert httpx.post(b.url + "/v1/admin/chat", json={"open": True}, headers=boss, timeout=30).status_code == 200
    assert cluster.chat(a, "alice", "Bonjour").status_code == 200


def test_kit_doctor_shows_the_database_redis_and_each_engine(cluster: Cluster) -> None:
    doctor = run_kit("doctor", "--json", env=cluster.env)
    checks = {c["name"]: c for c in __import__("json").loads(doctor.stdout)["checks"]}
    assert checks["database"]["status"] == "PASS" and "(postgresql), schema 0002" in checks["database"]["detail"]
    assert checks["redis"]["status"] == "PASS"
    assert all(checks[f"engine {n}"]["status"] == "PASS" for n in cluster.engines), checks


def test_killed_engine_under_load_hangs_nothing_and_rejoins(cluster: Cluster) -> None:
    a, b = cluster.gateways
    victim = cluster.engines["kit-b"]
    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        futures = [ex.submit(cluster.chat, (a, b)[i % 2], "alice", f"Rédige une note {i} sur les archives.",
                             max_tokens=48) for i in range(12)]
        time.sleep(1.5)
        victim.kill()
        results = [f.result(timeout=240) for f in futures]  # none hangs
    for r in results:  # an answer, or a clear error for an answer cut after its first words
        assert r.status_code == 200 or (r.status_code >= 500 and r.json()["error"]["message"]), r.text
    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        after = list(ex.map(lambda i: cluster.chat((a, b)[i % 2], "alice", f"Nouvelle demande {i}"), range(12)))
    assert [r.status_code for r in after] == [200] * 12, [r.text for r in after if r.status_code != 200]
    assert all(gw.pool()["kit-b"]["up"] == 0.0 for gw in (a, b))
    victim.start()
    victim.wait_ready()
    deadline = time.time() + 30
    while time.time() < deadline and not all(gw.pool()["kit-b"]["up"] == 1.0 for gw in (a, b)):
        time.sleep(0.5)
    assert all(gw.pool()["kit-b"]["up"] == 1.0 for gw in (a, b))


def test_killed_gateway_leaves_the_other_serving_the_same_users(cluster: Cluster) -> None:
    a, b = cluster.gateways
    auth = {"Authorization": f"Bearer {cluster.keys['alice']}"}
    cid = httpx.post(a.url + "/v1/conversations", json={"title": "avant la panne"}, headers=auth,
                     timeout=30).json()["id"]
    assert cluster.chat(a, "alice", "Premier message", conversation_id=cid).status_code == 200
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(timeout=30)
    listed = httpx.get(b.url + "/v1/conversations", headers=auth, timeout=30).json()["data"]
    assert cid in [c["id"] for c in listed]  # the history
    r = cluster.chat(b, "alice", "Suite", conversation_id=cid)  # no new acknowledgement asked
    assert r.status_code == 200, r.text
    got = httpx.get(b.url + f"/v1/conversations/{cid}", headers=auth, timeout=30).json()
    assert [m["content"] for m in got["messages"] if m["role"] == "user"] == ["Premier message", "Suite"]


def test_the_audit_chain_verifies_with_the_rows_of_both_gateways(cluster: Cluster) -> None:
    verify = run_kit("audit", "verify", env=cluster.env)
    assert verify.returncode == 0 and "chain intact" in verify.stdout, verify.stdout + verify.stderr
    stats = run_kit("audit", "stats", "--json", env=cluster.env)
    assert stats.returncode == 0
    import json

    chats = json.loads(stats.stdout)["by_action"]["chat"]
    assert chats >= 3 + 24 + LIMITED + 1 + 12 + 12 + 2, stats.stdout  # every answered request above
