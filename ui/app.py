"""The browser chat: a Gradio Blocks page that talks to the gateway API like any other client.

``create_ui(settings, api_url)`` lays the page out and wires its events; ``launch_ui(...)`` checks
the configuration, then serves it on the configured address with the chosen sign-in. Nothing is
loaded from outside the machine: no analytics, no share link, no web fonts, no CDN.
"""

from __future__ import annotations

import atexit
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported anywhere

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from kit.config import Settings  # noqa: E402
from ui.base import Components  # noqa: E402
from ui.chat import ChatHandlers  # noqa: E402
from ui.client import GatewayClient  # noqa: E402
from ui.documents import ACCEPTED, DocumentHandlers  # noqa: E402
from ui.downloads import Downloads  # noqa: E402
from ui.events import wire  # noqa: E402
from ui.guard import Doorman, PageGuard, gate_lifespan  # noqa: E402
from ui.pages import PageHandlers  # noqa: E402
from ui.sessions import SessionGuard, Sessions, make_sign_in  # noqa: E402
from ui.texts import language_choices, texts  # noqa: E402
from ui.views import new_conversation  # noqa: E402

STATIC = Path(__file__).resolve().parent / "static"
MAX_QUIZ = 10


class Handlers(PageHandlers, ChatHandlers, DocumentHandlers):
    pass


def theme() -> gr.themes.Base:
    """Soft theme on the system's own fonts: no font is fetched from anywhere."""
    return gr.themes.Soft(
        primary_hue="blue",
        secondary_hue="slate",
        neutral_hue="slate",
        radius_size="md",
        font=["system-ui", "-apple-system", "'Segoe UI'", "Roboto", "'Helvetica Neue'", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "'Liberation Mono'", "monospace"],
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
    it offers (exports) go to `downloads`, served by the page's guard."""
    lang0 = settings.ui.default_language
    t = texts(lang0)
    c = Components(labels=[])
    client = client or GatewayClient(api_url, api_key, read_timeout_s=settings.server.request_timeout_s + 30)
    env_tokens = os.environ.get("KIT_UI_MAX_TOKENS", "")
    tokens = max_tokens or (int(env_tokens) if env_tokens.isdigit() else settings.server.max_tokens_default)
    h = Handlers(settings, client, c, max_tokens=tokens, sessions=sessions)
    h.downloads = downloads or Downloads()
    h.setup()

    def lab(component: Any, **props: str) -> Any:
        c.labels.append((component, props))
        return component

    org = settings.deployment.organisation
    with gr.Blocks(
        title=t("app.page_title", organisation=org) if org else t("app.title"),
        analytics_enabled=False,
        delete_cache=(3600, 3600),
    ) as demo:
        c.lang_state = gr.State(lang0)
        c.conv = gr.State(new_conversation())
        c.charter_state = gr.State(None)
        c.model_state = gr.State("")
        c.pending = gr.State(None)
        c.pii_pending = gr.State(None)
        c.fb_state = gr.State(None)
        c.admin_cache = gr.State(None)

        # header: brand, who is signed in, language (on every screen), sign out
        with gr.Row(elem_id="kit-header", equal_height=True):
            c.brand = gr.HTML(h.brand_html(t), elem_id="kit-brand-box")
            c.who_md = gr.Markdown("", elem_id="kit-who")
            c.lang = gr.Radio(
                choices=language_choices(),
                value=lang0,
                show_label=False,
                container=False,
                elem_id="kit-lang",
                scale=0,
                min_width=190,
            )
            c.logout = lab(
                gr.Button(
                    t("app.logout"),
                    link="/logout",
                    size="sm",
                    variant="secondary",
                    scale=0,
                    min_width=120,
                    visible=settings.ui.auth == "local",
                    elem_id="kit-logout",
                ),
                value="app.logout",
            )

        c.loading = lab(gr.Markdown(t("app.loading"), elem_id="kit-loading"), value="app.loading")
        c.banner = gr.Markdown(visible=False, elem_id="kit-banner")
        c.retry_btn = gr.Button(t("app.retry"), visible=False, size="sm", elem_id="kit-retry")

        # the gate: charter, limits, AI statement, contacts, sources, guide and quiz
        with gr.Column(visible=False, elem_id="kit-gate") as c.gate_col:
            c.gate_head = gr.Markdown(f"# {t('gate.title')}")
            c.gate_intro = lab(gr.Markdown(t("gate.intro"), elem_classes=["kit-lead"]), value="gate.intro")
            c.gate_md = gr.Markdown(elem_id="kit-charter")
            with gr.Group(elem_id="kit-quiz"):
                c.quiz_head = gr.Markdown(visible=False)
                c.quiz = [gr.Radio(choices=[], visible=False, elem_classes=["kit-question"]) for _ in range(MAX_QUIZ)]
            c.confirm_cb = lab(
                gr.Checkbox(label=t("gate.confirm"), value=False, elem_id="kit-confirm"), label="gate.confirm"
            )
            c.gate_btn = lab(gr.Button(t("gate.submit"), variant="primary", elem_id="kit-ack"), value="gate.submit")
            c.gate_msg = gr.Markdown(visible=False, elem_id="kit-gate-msg")

        with gr.Column(visible=False, elem_id="kit-main") as c.main_col:
            with gr.Tabs(selected="chat", elem_id="kit-tabs") as c.tabs:
                with gr.Tab(t("chat.tab"), id="chat", elem_id="kit-tab-chat") as c.tab_chat:
                    c.closed_md = gr.Markdown(visible=False, elem_id="kit-closed")
                    c.chatbot = lab(
                        gr.Chatbot(
                            [],
                            label=t("chat.label"),
                            show_label=False,
                            height="42vh",
                            min_height=260,
                            buttons=["copy"],
                            feedback_options=("Like", "Dislike"),
                            layout="bubble",
                            elem_id="kit-chatbot",
                            sanitize_html=True,
                            allow_tags=False,
                            autoscroll=True,
                            placeholder=None,
                            group_consecutive_messages=False,
                        ),
                        label="chat.label",
                    )
                    with gr.Column(visible=False, elem_id="kit-pii") as c.pii_col:
                        c.pii_md = gr.Markdown()
                        with gr.Row():
                            c.pii_send = gr.Button(t("pii.confirm"), variant="primary", elem_id="kit-pii-send")
                            c.pii_edit = lab(gr.Button(t("pii.edit"), elem_id="kit-pii-edit"), value="pii.edit")
                    with gr.Column(visible=False, elem_id="kit-feedback") as c.fb_col:
                        c.fb_md = gr.Markdown()
                        c.fb_comment = lab(
                            gr.Textbox(
                                label=t("feedback.comment"), lines=2, placeholder=t("feedback.comment_placeholder")
                            ),
                            label="feedback.comment",
                            placeholder="feedback.comment_placeholder",
                        )
                        with gr.Row():
                            c.fb_send = lab(
                                gr.Button(t("feedback.send"), variant="primary", size="sm"), value="feedback.send"
                            )
                            c.fb_skip = lab(gr.Button(t("feedback.skip"), size="sm"), value="feedback.skip")
                            c.fb_close = lab(gr.Button(t("feedback.close"), size="sm"), value="feedback.close")
                    with gr.Column(visible=False, elem_id="kit-report") as c.report_col:
                        c.report_md = gr.Markdown(f"**{t('report.title')}** — {t('report.intro')}")
                        c.report_text = lab(
                            gr.Textbox(
                                label=t("report.comment"), lines=3, placeholder=t("feedback.comment_placeholder")
                            ),
                            label="report.comment",
                            placeholder="feedback.comment_placeholder",
                        )
                        with gr.Row():
                            c.report_send = lab(
                                gr.Button(t("report.send"), variant="stop", size="sm"), value="report.send"
                            )
                            c.report_close = lab(gr.Button(t("feedback.close"), size="sm"), value="feedback.close")
                    c.chat_msg = gr.Markdown(visible=False, elem_id="kit-chat-msg")
                    with gr.Row(elem_id="kit-compose", equal_height=True):
                        c.input_box = lab(
                            gr.Textbox(
                                label=t("chat.input_label"),
                                show_label=False,
                                lines=2,
                                max_lines=12,
                                placeholder=t("chat.input_placeholder"),
                                elem_id="kit-input",
                                scale=8,
                            ),
                            label="chat.input_label",
                            placeholder="chat.input_placeholder",
                        )
                        with gr.Column(scale=1, min_width=140):
                            c.send_btn = lab(
                                gr.Button(t("chat.send"), variant="primary", elem_id="kit-send"), value="chat.send"
                            )
                            c.stop_btn = lab(
                                gr.Button(t("chat.stop"), variant="stop", visible=False, elem_id="kit-stop"),
                                value="chat.stop",
                            )
                    c.docs_cb = lab(
                        gr.Checkbox(
                            label=t("docs.switch"),
                            value=False,
                            elem_id="kit-docs-switch",
                            container=False,
                        ),
                        label="docs.switch",
                    )
                    with gr.Row(elem_id="kit-actions", equal_height=False):
                        c.templates = lab(
                            gr.Dropdown(
                                choices=[],
                                value=None,
                                label=t("chat.templates"),
                                elem_id="kit-templates",
                                interactive=True,
                                scale=3,
                                min_width=200,
                            ),
                            label="chat.templates",
                        )
                        c.another_btn = lab(
                            gr.Button(t("chat.another"), size="sm", elem_id="kit-another", scale=0, min_width=120),
                            value="chat.another",
                        )
                        c.new_btn = lab(
                            gr.Button(t("chat.new"), size="sm", elem_id="kit-new", scale=0, min_width=120),
                            value="chat.new",
                        )
                        c.report_btn = lab(
                            gr.Button(t("chat.report"), size="sm", elem_id="kit-report-btn", scale=0, min_width=120),
                            value="chat.report",
                        )
                    c.notice = gr.HTML("", elem_id="kit-notice-box")

                with gr.Tab(t("history.tab"), id="history", elem_id="kit-tab-history") as c.tab_history:
                    c.hist_info = gr.Markdown(elem_id="kit-hist-info")
                    with gr.Column(visible=True) as c.hist_tools:
                        c.hist_dd = lab(
                            gr.Dropdown(choices=[], label=t("history.list"), elem_id="kit-hist-list"),
                            label="history.list",
                        )
                        with gr.Row():
                            c.hist_open = lab(
                                gr.Button(t("history.open"), variant="primary", size="sm"), value="history.open"
                            )
                            c.hist_delete = lab(gr.Button(t("history.delete"), size="sm"), value="history.delete")
                            c.hist_refresh = lab(gr.Button(t("history.refresh"), size="sm"), value="history.refresh")
                        with gr.Row():
                            c.hist_confirm = lab(
                                gr.Checkbox(label=t("history.delete_all_confirm"), value=False),
                                label="history.delete_all_confirm",
                            )
                            c.hist_delete_all = lab(
                                gr.Button(t("history.delete_all"), variant="stop", size="sm"),
                                value="history.delete_all",
                            )
                    c.export_btn = lab(
                        gr.Button(t("history.export"), size="sm", elem_id="kit-export"), value="history.export"
                    )
                    c.export_file = gr.HTML(visible=False, elem_id="kit-export-file")
                    c.hist_msg = gr.Markdown(visible=False)

                with gr.Tab(t("charter.tab"), id="charter", elem_id="kit-tab-charter") as c.tab_charter:
                    c.charter_md = gr.Markdown(elem_id="kit-charter-again")

                with gr.Tab(t("admin.tab"), id="admin", visible=False, elem_id="kit-tab-admin") as c.tab_admin:
                    c.admin_readonly = lab(gr.Markdown(t("admin.readonly"), visible=False), value="admin.readonly")
                    c.admin_refresh = lab(gr.Button(t("admin.refresh"), size="sm"), value="admin.refresh")
                    c.admin_msg = gr.Markdown(visible=False)
                    c.stats_md = gr.Markdown(elem_id="kit-stats")
                    c.verify_btn = lab(
                        gr.Button(t("admin.verify"), size="sm", elem_id="kit-verify"), value="admin.verify"
                    )
                    c.verify_md = gr.Markdown(elem_id="kit-verify-result")
                    c.bench_btn = lab(gr.Button(t("admin.bench"), size="sm", elem_id="kit-bench"), value="admin.bench")
                    c.bench_md = gr.Markdown(visible=False, elem_id="kit-bench-summary")
                    c.bench_file = gr.HTML(visible=False, elem_id="kit-bench-file")
                    c.fb_title = gr.Markdown(f"### {t('admin.feedback_title')}")
                    c.fb_none = gr.Markdown(visible=False)
                    c.fb_table = gr.Dataframe(visible=False, interactive=False, wrap=True, elem_id="kit-fb-table")
                    with gr.Column(visible=False, elem_id="kit-switch") as c.admin_switch:
                        c.switch_title = gr.Markdown(f"### {t('admin.switch_title')}")
                        c.close_cb = lab(
                            gr.Checkbox(label=t("admin.close_chat"), value=False), label="admin.close_chat"
                        )
                        c.close_text = lab(
                            gr.Textbox(label=t("admin.close_message"), placeholder=t("admin.close_placeholder")),
                            label="admin.close_message",
                            placeholder="admin.close_placeholder",
                        )
                        c.switch_btn = lab(
                            gr.Button(t("admin.apply"), variant="primary", size="sm"), value="admin.apply"
                        )

                with gr.Tab(t("docs.tab"), id="documents", visible=False, elem_id="kit-tab-docs") as c.tab_docs:
                    c.docs_intro = lab(gr.Markdown(t("docs.intro")), value="docs.intro")
                    c.docs_files = lab(
                        gr.File(
                            label=t("docs.files"),
                            file_count="multiple",
                            file_types=ACCEPTED,
                            type="filepath",
                            elem_id="kit-docs-files",
                        ),
                        label="docs.files",
                    )
                    with gr.Row():
                        c.docs_groups = lab(
                            gr.Textbox(label=t("docs.groups"), placeholder=t("docs.groups_placeholder"), scale=3),
                            label="docs.groups",
                            placeholder="docs.groups_placeholder",
                        )
                        c.docs_collection = lab(
                            gr.Textbox(label=t("docs.collection"), placeholder="default", scale=1),
                            label="docs.collection",
                        )
                    c.docs_ingest = lab(
                        gr.Button(t("docs.ingest"), variant="primary", elem_id="kit-docs-ingest"), value="docs.ingest"
                    )
                    c.docs_msg = gr.Markdown(visible=False, elem_id="kit-docs-msg")
                    c.docs_report = gr.Markdown(visible=False, elem_id="kit-docs-report")
                    c.docs_list_title = gr.Markdown(f"### {t('docs.list_title')}")
                    c.docs_none = gr.Markdown(visible=False)
                    c.docs_table = gr.Dataframe(visible=False, interactive=False, wrap=True, elem_id="kit-docs-table")
                    with gr.Row(equal_height=True):
                        c.docs_pick = lab(
                            gr.Dropdown(
                                choices=[], value=None, label=t("docs.remove_pick"), scale=3, elem_id="kit-docs-pick"
                            ),
                            label="docs.remove_pick",
                        )
                        c.docs_remove = lab(
                            gr.Button(t("docs.remove"), variant="stop", size="sm", scale=1, elem_id="kit-docs-remove"),
                            value="docs.remove",
                        )
                        c.docs_refresh = lab(gr.Button(t("admin.refresh"), size="sm", scale=1), value="admin.refresh")

        wire(demo, c, h)
    return demo


def head_html() -> str:
    """Local script (copy without the AI label markup, then the watermark) and page metadata."""
    script = (STATIC / "kit.js").read_text(encoding="utf-8")
    return f'<meta name="robots" content="noindex,nofollow">\n<script>\n{script}\n</script>'


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
            "middleware": [
                Middleware(PageGuard, lang=settings.ui.default_language, doorman=doorman, downloads=downloads),
                Middleware(SessionGuard, sessions=sessions),
            ],
            "lifespan": gate_lifespan(doorman),  # around Gradio's own middleware, whose CORS grants other sites
            "docs_url": None,
            "redoc_url": None,
        },
    )
    return demo
