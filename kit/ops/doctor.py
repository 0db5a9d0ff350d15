"""`kit doctor`: check the installation and the configuration; each check says how to fix itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kit.errors import KitError, redact
from kit.ops.checks import Check, Status, listening

if TYPE_CHECKING:
    from kit.config import Settings

def total_ram_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0


def available_ram_gb() -> float:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return total_ram_gb()


def check_python() -> Check:
    v = sys.version_info
    if v >= (3, 11):
        return Check("python", "PASS", f"Python {v.major}.{v.minor}.{v.micro}")
    return Check("python", "FAIL", f"Python {v.major}.{v.minor}", "install Python 3.11 or newer, then rerun install.sh")


def nvidia_gpu_present() -> bool:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def check_llama() -> list[Check]:
    try:
        import llama_cpp as L

        from kit.engine.build import extra_layouts_allowed
    except ImportError as exc:
        return [Check("llama.cpp", "FAIL", f"llama-cpp-python cannot be imported ({exc})",
                      "run ./scripts/install.sh again (it builds llama-cpp-python)")]
    info = L.llama_print_system_info().decode(errors="replace").strip()
    features = [part.split("=")[0].strip() for part in info.replace("|", ";").split(";") if "= 1" in part]
    checks = [Check("llama.cpp", "PASS",
                    f"llama-cpp-python {L.__version__}; CPU features: {', '.join(features) or info}")]
    if not extra_layouts_allowed(L):
        checks.append(Check("llama.cpp AMX", "WARN", "this build uses Intel AMX, whose kernels crash this llama.cpp "
                            "version: kit runs it with the extra weight layouts off (slower prompt reading)",
                            "run ./scripts/install.sh again: it rebuilds llama.cpp without AMX"))
    offload = bool(L.llama_supports_gpu_offload())
    gpu = nvidia_gpu_present()
    if gpu and not offload:
        checks.append(Check("gpu offload", "WARN", "an NVIDIA GPU is present but this llama.cpp build is CPU-only",
                            "run ./scripts/install.sh --cuda to rebuild with CUDA"))
    else:
        checks.append(Check("gpu offload", "PASS", "supported" if offload else "CPU-only build (no GPU found)"))
    return checks


def check_config() -> tuple[list[Check], Settings | None]:
    from kit.config import is_loopback_host, load_settings

    try:
        settings = load_settings()
    except KitError as exc:
        return [Check("configuration", "FAIL", str(exc), "fix the key named above, or run `kit config init`")], None
    checks = [Check("configuration", "PASS", f"valid ({settings.source or 'defaults, no kit.yaml found'})")]
    try:
        settings.require_purpose()
        checks.append(Check("purpose", "PASS", settings.deployment.purpose[:80]))
    except KitError as exc:
        checks.append(Check("purpose", "FAIL", str(exc), "set deployment.purpose in kit.yaml"))
    chat = listening(settings, "ui")
    auth = str(chat["noted"].get("auth") or settings.ui.auth)
    if not is_loopback_host(chat["host"]) and auth == "none":
        checks.append(Check("ui exposure", "FAIL", f"the chat binds to {chat['host']} with no sign-in",
                            "set ui.auth to local or proxy, or ui.host to 127.0.0.1"))
    else:
        checks.append(Check("ui exposure", "PASS", f"chat on {chat['host']}:{chat['port']}, sign-in: {auth}"))
    try:
        settings.check_engine_contract()
    except KitError as exc:
        checks.append(Check("remote engine", "FAIL", str(exc), "set server.engine_contract_ref"))
    if not settings.policy.pii_detection:
        checks.append(Check("personal data", "WARN", "policy.pii_detection is off: messages reach the model "
                            "unscanned, whatever policy.pii_actions says", "turn it back on (remove the key)"))
    if settings.deployment.profile == "production" and settings.policy.log_prompt_text:
        checks.append(Check("audit minimisation", "WARN",
                            "policy.log_prompt_text is on: prompts are stored in the audit log",
                            "turn it off unless the DPO asked for it"))
    return checks, settings


def check_model(settings: Settings) -> list[Check]:
    from kit.models.catalog import load_catalog
    from kit.models.lock import installed, verify_one

    if settings.server.engines:
        key = settings.server.engine_api_key
        return [check_engine(e.name, e.url, e.api_key or key) for e in settings.server.engines]
    if settings.server.engine_url:
        return [Check("model", "PASS", f"served by {settings.server.engine_url}")]
    name = settings.models.default
    try:
        entry = load_catalog(settings.models.catalog).get(name)
    except KitError as exc:
        return [Check("model", "FAIL", str(exc), "fix models.default or models.yaml")]
    lock = installed(settings.home, name)
    if lock is None:
        return [Check("model", "FAIL", f"default model {name} is not installed", f"run `kit models pull {name}`")]
    result = verify_one(settings.home, lock)
    if not result.ok:
        return [Check("model", "FAIL", result.message, f"run `kit models rm {name}` then `kit models pull {name}`")]
    checks = [Check("model", "PASS", f"{name} installed and verified ({lock.size / 2**20:.0f} MiB, {entry.licence})")]
    if entry.demo:
        checks.append(demo_check(name, settings.deployment.profile))
    need = entry.ram_needed() or lock.size / 2**30 * 1.3
    avail = available_ram_gb()
    ram_status: Status = "PASS" if need <= avail else "WARN" if need <= total_ram_gb() else "FAIL"
    checks.append(Check("memory", ram_status, f"{avail:.1f} GiB available, the model needs about {need:.1f} GiB",
                        "choose a smaller model or quantization (`kit models list`)"))
    model_dir = Path(settings.home) / "models"
    if os.access(model_dir, os.W_OK) and os.geteuid() != 0 and os.environ.get("KIT_SERVICE") == "1":
        checks.append(Check("model files", "WARN", f"{model_dir} is writable by the serving user",
                            "make the model directory read-only for the service user"))
    return checks


def demo_check(name: str, profile: str) -> Check:
    """A demonstration model serves: fine for trying the kit, a warning under the production profile."""
    fix = "pull a production model (`kit models list`, then `kit models pull NAME`) and set models.default to it"
    if profile == "production":
        return Check("demo model", "WARN", f"{name} is a demonstration model (catalogue flag demo): too small for "
                     "real work, and its answers are often wrong or broken", fix)
    return Check("demo model", "PASS", f"{name} is a demonstration model: fine for trying the kit, not for "
                 "production (the chat says so)", fix)


def check_engine(name: str, url: str, api_key: str | None) -> Check:
    """One engine of server.engines: does its health check pass, and does it take the gateway's key?"""
    import httpx

    base = url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(trust_env=False, timeout=5) as http:
            health = http.get(base + "/health")
            models = http.get(base + "/v1/models", headers=headers)
    except httpx.HTTPError as exc:
        return Check(f"engine {name}", "FAIL", f"{base} does not answer ({exc})",
                     "start it (`kit engine`, llama-server or vLLM) or fix server.engines")
    if models.status_code in (401, 403):
        return Check(f"engine {name}", "FAIL", f"{base} refuses the key", "set server.engines[].api_key to its key")
    if health.status_code != 200 or models.status_code != 200:
        return Check(f"engine {name}", "WARN", f"{base} answers {health.status_code} to /health (starting?)",
                     "wait for it to load its model; the pool takes it back when its health check passes")
    return Check(f"engine {name}", "PASS", f"{base} in service")


def check_database(home: Path) -> list[Check]:
    """The database (reachable, schema of this kit) and, when set, the shared Redis."""
    from kit.storage.db import SCHEMA_VERSION, connect, current_revision, database_url

    try:
        db = connect(database_url(home))
        current, head = current_revision(db), SCHEMA_VERSION
    except KitError as exc:
        checks = [Check("database", "FAIL", str(exc), "start the database server or correct KIT_DATABASE_URL")]
    else:
        if current == head:
            checks = [Check("database", "PASS", f"{db.where} ({db.engine.dialect.name}), schema {current}")]
        elif current is None:
            checks = [Check("database", "PASS", f"{db.where}: empty, created at the first start")]
        else:
            checks = [Check("database", "FAIL", f"{db.where} has schema {current}, this kit needs {head}",
                            "run `kit db upgrade` (it keeps every row)")]
        db.engine.dispose()
    url = os.environ.get("KIT_REDIS_URL", "").strip()
    if url:
        try:
            import redis

            redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3).ping()
            checks.append(Check("redis", "PASS", f"{redact(url)} answers: limits and engine counts are shared"))
        except ImportError:
            checks.append(Check("redis", "FAIL", "KIT_REDIS_URL is set but the Redis client is missing",
                                "pip install 'kit[redis]'"))
        except (redis.RedisError, OSError) as exc:
            checks.append(Check("redis", "FAIL", f"{redact(url)} does not answer ({exc})",
                                "start Redis or correct KIT_REDIS_URL"))
    return checks


def check_disk(home: Path) -> Check:
    probe = home if home.exists() else home.parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    status: Status = "PASS" if free >= 5 else "WARN" if free >= 1 else "FAIL"
    return Check("disk", status, f"{free:.1f} GiB free under {home}", "free space or move KIT_HOME to a larger disk")


def check_bundle(home: Path) -> Check | None:
    """The bundle this install came from (``$KIT_HOME/bundle.json``, written by install.sh --bundle)."""
    import json

    path = home / "bundle.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        detail = (f"installed from {data['source']} (made {data['created_at']}, kit {data['kit_version']}, "
                  f"{data['backend']}, models {', '.join(data['models'])}, {data['files']} files checked"
                  f"{', signed' if data.get('signed') else ''}; manifest sha256 {data['manifest_sha256'][:12]}…)")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Check("bundle", "WARN", f"{path} is unreadable ({exc})", "install the bundle again")
    return Check("bundle", "PASS", detail)


def check_ocr(settings: Settings) -> Check:
    """Tesseract and its language data, for scanned pages and images attached to a conversation."""
    from kit.documents import ocr

    wanted = settings.attachments.ocr_languages
    if not settings.attachments.enabled or not settings.attachments.ocr:
        return Check("ocr", "PASS", "turned off (attachments.ocr): scanned pages and images are refused")
    found = ocr.status()
    if found.program is None:
        return Check("ocr", "WARN", "Tesseract is not installed: scanned pages and images attached to a "
                     "conversation are refused", "apt-get install tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng")
    missing = found.missing(wanted)
    if missing:
        return Check("ocr", "WARN", f"{found.version}: no data for {', '.join(missing)} (attachments.ocr_languages)",
                     "apt-get install " + " ".join(f"tesseract-ocr-{lang}" for lang in missing))
    return Check("ocr", "PASS", f"{found.version}, languages {wanted}")


def run_checks() -> list[Check]:
    from kit.config import kit_home

    checks: list[Check] = [check_python()]
    checks.extend(check_llama())
    config_checks, settings = check_config()
    checks.extend(config_checks)
    if settings is not None:
        from kit.ops.identity import identity_checks
        from kit.ops.security import security_checks

        checks.extend(security_checks(settings))
        checks.extend(identity_checks(settings))
        checks.extend(check_model(settings))
        from kit.ops.documents import check_documents

        checks.extend(check_documents(settings))
        checks.extend(check_database(settings.home))
        checks.append(check_ocr(settings))
        bundle = check_bundle(settings.home)
        if bundle is not None:
            checks.append(bundle)
    checks.append(check_disk(kit_home()))
    return checks
