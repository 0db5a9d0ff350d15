"""The browser chat: a Gradio Blocks page that talks to the gateway API like any other client.

``create_ui(settings, api_url)`` assembles the page (ui.page: the frame of ui.layout around one module
per tab in ui.tabs) with one handler object per part, and wires it; ``launch_ui(...)`` checks
the configuration, then serves it on the configured address with the chosen sign-in. Nothing is
loaded from outside the machine: no analytics, no share link, no web fonts, no CDN.
"""

from __future__ import annotations

import atexit
import json
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported anywhere

from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from kit.config import Settings  # noqa: E402
from ui import page  # noqa: E402
from ui.admin import AdminHandlers  # noqa: E402
from ui.attach import AttachHandlers  # noqa: E402
from ui.base import Base  # noqa: E402
from ui.chat import ChatHandlers  # noqa: E402
from ui.client import GatewayClient  # noqa: E402
from ui.documents import DocumentHandlers  # noqa: E402
from ui.downloads import Downloads  # noqa: E402
from ui.guard import Doorman, PageGuard, gate_lifespan  # noqa: E402
from ui.history import HistoryHandlers  # noqa: E402
from ui.oidc import OidcGate, OidcSignIn  # noqa: E402
from ui.ownpages import OwnPages  # noqa: E402
from ui.pages import PageHandlers  # noqa: E402
from ui.sessions import SessionGuard, Sessions, make_sign_in  # noqa: E402
from ui.texts import LANGUAGES, texts  # noqa: E402
from ui.usage import UsageHandlers  # noqa: E402

STATIC = Path(__file__).resolve().parent / "static"
H = TypeVar("H", bound=Base)


def theme() -> gr.themes.Base:
    """Soft theme on the system's own fonts (no font is fetched from anywhere), with the text colours darkened
    where Gradio's defaults read below the 4.5:1 contrast WCAG 2.1 AA asks (labels, buttons, subdued text)."""
    return gr.themes.Soft(
        primary_hue="blue",
        secondary_hue="slate",
        neutral_hue="slate",
        radius_size="md",
        font=["system-ui", "-apple-system", "'Segoe UI'", "Roboto", "'Helvetica Neue'", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "'Liberation Mono'", "monospace"],
    ).set(
        body_text_color_subdued="*neutral_600",
        block_label_text_color="*primary_800",
        block_title_text_color="*primary_800",
        block_info_text_color="*neutral_600",
        color_accent="*primary_700",
        color_accent_soft="*primary_100",
        link_text_color="*primary_700",
        link_text_color_visited="*primary_800",
        button_primary_background_fill="*primary_700",
        button_primary_background_fill_hover="*primary_800",
        button_primary_border_color="*primary_700",
        button_primary_border_color_hover="*primary_800",
        button_primary_text_color="white",
        button_cancel_text_color="#991b1b",
        checkbox_label_background_fill_selected="*primary_700",
        checkbox_background_color_selected="*primary_700",
        checkbox_border_color_selected="*primary_700",
        input_placeholder_color="*neutral_500",
        loader_color="*primary_700",
        # the same in the dark colour scheme (the browser's preference)
        body_text_color_subdued_dark="*neutral_300",
        block_info_text_color_dark="*neutral_300",
        input_placeholder_color_dark="*neutral_300",
        link_text_color_dark="*primary_300",
        link_text_color_hover_dark="*primary_200",
        link_text_color_active_dark="*primary_200",
        link_text_color_visited_dark="*primary_200",
        button_primary_background_fill_dark="*primary_700",
        button_primary_background_fill_hover_dark="*primary_800",
        button_primary_border_color_dark="*primary_700",
        button_primary_border_color_hover_dark="*primary_800",
    )


def create_ui(
    settings: Settings,
    api_url: str,
    *,
    api_key: str | None = None,
    max_tokens: int | None = None,
    client: GatewayClient | None = None,
    sessions: Sessions | None = None,
    downloads: Downloads | None = None,
) -> gr.Blocks:
    """The page, bound to the gateway at `api_url` (with the UI's service key when it has keys); the files
    it offers (exports) go to `downloads`, served by the page's guard. The tabs are laid out and wired by
    their own modules (ui.tabs); this only assembles them."""
    lang = settings.ui.default_language
    t = texts(lang)
    client = client or GatewayClient(api_url, api_key, read_timeout_s=settings.server.request_timeout_s + 30)
    env_tokens = os.environ.get("KIT_UI_MAX_TOKENS", "")
    tokens = max_tokens or (int(env_tokens) if env_tokens.isdigit() else settings.server.max_tokens_default)
    sessions = sessions if sessions is not None else Sessions.from_settings(settings)  # one for every part
    downloads = downloads or Downloads()
    org = settings.deployment.organisation
    with gr.Blocks(
        title=t("app.page_title", organisation=org) if org else t("app.title"),
        analytics_enabled=False,
        delete_cache=(3600, 3600),
    ) as demo:
        p = page.build(settings, lang, t)

        def part(cls: type[H], c: Any) -> H:
            return cls(settings, client, c, max_tokens=tokens, sessions=sessions, page=p, downloads=downloads)

        admin = part(AdminHandlers, p.admin)
        handlers = page.Handlers(
            page=PageHandlers(settings, client, p, max_tokens=tokens, sessions=sessions, page=p, downloads=downloads,
                              admin=admin),
            chat=part(ChatHandlers, p.chat),
            history=part(HistoryHandlers, p.history),
            admin=admin,
            documents=part(DocumentHandlers, p.documents),
            usage=part(UsageHandlers, p.usage),
            attach=part(AttachHandlers, p.chat),
        )
        page.wire(demo, p, handlers)
    return demo


A11Y_KEYS = ("language_switch", "conversation", "user_message", "bot_message", "copy", "clear", "like", "dislike",
             "more_tabs")


def head_html() -> str:
    """Local script (copy without the AI label markup, then the watermark; accessible names in the page's
    language, whose texts it is given here; our words in the file drop zones) and page metadata."""
    script = (STATIC / "kit.js").read_text(encoding="utf-8")
    names = {lang: {key: texts(lang)(f"a11y.{key}") for key in A11Y_KEYS} for lang in LANGUAGES}
    data = json.dumps(names, ensure_ascii=False).replace("<", "\\u003c")
    words = {}  # Gradio's words in its file drop zones (in the browser's language), and ours in their place
    for lang in LANGUAGES:
        t = texts(lang)
        words.update({t("gradio_upload.drop"): t("docs.upload_drop"), t("gradio_upload.click"): t("docs.upload_click")})
    buttons = {"names": texts("en").items("gradio_upload.buttons"),
               **{lang: texts(lang)("docs.upload_click") for lang in LANGUAGES}}  # named in the page's language
    upload = json.dumps({"words": words, "buttons": buttons}, ensure_ascii=False).replace("<", "\\u003c")
    return (f'<meta name="robots" content="noindex,nofollow">\n<script>\nwindow.kitA11y = {data};\n'
            f"window.kitUpload = {upload};\n{script}\n</script>")


def launch_ui(
    settings: Settings,
    api_url: str,
    *,
    host: str | None = None,
    port: int | None = None,
    api_key: str | None = None,
    max_tokens: int | None = None,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
) -> gr.Blocks:
    """Check the configuration, build the page and serve it (blocks unless prevent_thread_lock);
    returns the page, whose close() stops it."""
    host = host or settings.ui.host
    port = port or settings.ui.port
    settings.check_ui(host)
    # The client address is the direct peer, rewritten from X-Forwarded-For only when that peer is a listed
    # reverse proxy (local sign-in: the gateway throttles failed sign-ins per address); never in proxy mode.
    os.environ["FORWARDED_ALLOW_IPS"] = ",".join(settings.ui.trusted_proxies if settings.ui.auth == "local" else [])
    sessions = Sessions.from_settings(settings)
    downloads, doorman = Downloads(), Doorman(settings, host)
    atexit.register(downloads.close)  # an export never downloaded does not outlive the process
    demo = create_ui(settings, api_url, api_key=api_key, max_tokens=max_tokens, sessions=sessions,
                     downloads=downloads)
    auth = make_sign_in(GatewayClient(api_url, api_key)) if settings.ui.auth == "local" else None
    middleware = [
        Middleware(PageGuard, lang=settings.ui.default_language, doorman=doorman, downloads=downloads),
        Middleware(SessionGuard, sessions=sessions),
        Middleware(OwnPages, settings=settings),  # the sign-in page and the accessibility statement
    ]
    if settings.ui.auth == "oidc":  # the provider's sign-in routes, inside the session guard
        middleware.append(Middleware(OidcGate, signin=OidcSignIn(settings, sessions, GatewayClient(api_url, api_key))))
    fr, en = texts("fr"), texts("en")
    demo.queue(default_concurrency_limit=16)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        max_file_size=settings.ui.max_upload_bytes,  # uploads (documents) above this are refused
        auth=auth,
        prevent_thread_lock=prevent_thread_lock,
        auth_message=f'{fr("app.login_message")}<br><span lang="en">{en("app.login_message")}</span>',
        quiet=quiet,
        show_error=False,
        footer_links=[],
        run_history=False,
        enable_monitoring=False,
        pwa=False,
        mcp_server=False,
        ssr_mode=False,
        inbrowser=False,
        theme=theme(),
        css_paths=[STATIC / "kit.css"],
        head=head_html(),
        favicon_path=STATIC / "favicon.png" if (STATIC / "favicon.png").exists() else None,
        app_kwargs={
            "middleware": middleware,
            "lifespan": gate_lifespan(doorman),  # around Gradio's own middleware, whose CORS grants other sites
            "docs_url": None,
            "redoc_url": None,
        },
    )
    return demo
