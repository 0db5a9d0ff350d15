"""The chat's own sign-in page (ui.auth: local), in place of Gradio's: the brand, one language at a time
with its switch, labelled fields, and messages that say what happened: a wrong password, an account
locked after too many failures and when the lock ends (right password or not), an address held back.

The form posts to Gradio's ``/login`` (the password check itself: ui.sessions.make_sign_in); a local script
reads the answer and shows its message in a live region, or opens the chat."""

from __future__ import annotations

import html
import json

from kit.config import Settings
from ui.standalone import frame
from ui.texts import Texts

MESSAGES = ("missing", "wrong", "locked", "throttled", "failed", "working")

SCRIPT = """<script>
(function () {
  var form = document.getElementById("kit-sign-in");
  var box = document.getElementById("kit-sign-in-msg");
  var button = form.querySelector("button[type=submit]");
  var said = JSON.parse(document.getElementById("kit-sign-in-texts").textContent);
  var lang = document.documentElement.lang;
  var fields = [document.getElementById("kit-user"), document.getElementById("kit-password")];
  if (!document.activeElement || document.activeElement === document.body) { fields[0].focus(); }
  function show(text, invalid) {
    box.textContent = text;
    fields.forEach(function (f) { f.setAttribute("aria-invalid", invalid ? "true" : "false"); });
  }
  function until(seconds, template) {
    var end = new Date(Date.now() + seconds * 1000);
    var time = end.toLocaleTimeString(lang, {hour: "2-digit", minute: "2-digit"});
    return template.replace("{time}", time).replace("{minutes}", String(Math.max(1, Math.ceil(seconds / 60))));
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!fields[0].value.trim() || !fields[1].value) {
      show(said.missing, true);
      (fields[0].value.trim() ? fields[1] : fields[0]).focus();
      return;
    }
    button.disabled = true;
    box.textContent = "";
    button.textContent = said.working;
    fetch("login", {method: "POST", credentials: "same-origin",
                    body: new URLSearchParams({username: fields[0].value, password: fields[1].value})})
      .then(function (r) {
        if (r.ok) { window.location.replace("./?lang=" + lang); return null; }
        return r.json().catch(function () { return {}; }).then(function (data) {
          var detail = (data && typeof data.detail === "object" && data.detail) || {};
          var wait = Number(detail.retry_after || r.headers.get("Retry-After") || 60);
          if (r.status === 429) {
            show(until(wait, detail.reason === "account_locked" ? said.locked : said.throttled), false);
          } else if (r.status === 400 || r.status === 401) {
            show(said.wrong, true);
            fields[1].value = "";
            fields[1].focus();
          } else {
            show(said.failed, false);
          }
        });
      })
      .catch(function () { show(said.failed, false); })
      .then(function () { button.disabled = false; button.textContent = said.submit; });
  });
})();
</script>
"""


def sign_in_html(settings: Settings, t: Texts) -> str:
    """The sign-in page in the language of `t`."""
    said = {key: t(f"signin.{key}") for key in (*MESSAGES, "submit")}
    messages = json.dumps(said, ensure_ascii=False).replace("<", "\\u003c")
    body = (
        f'<div class="kit-card">\n<h1>{html.escape(t("signin.heading"))}</h1>\n'
        f'<p>{html.escape(t("signin.intro"))}</p>\n'
        + '<form id="kit-sign-in" method="post" action="login" novalidate>\n'
        f'<div class="kit-field"><label for="kit-user">{html.escape(t("signin.user"))}</label>'
        '<input id="kit-user" name="username" type="text" autocomplete="username" autocapitalize="none" '
        'spellcheck="false" required aria-describedby="kit-sign-in-msg" autofocus></div>\n'
        f'<div class="kit-field"><label for="kit-password">{html.escape(t("signin.password"))}</label>'
        '<input id="kit-password" name="password" type="password" autocomplete="current-password" required '
        'aria-describedby="kit-sign-in-msg"></div>\n'
        '<div id="kit-sign-in-msg" role="alert"></div>\n'
        f'<button type="submit">{html.escape(t("signin.submit"))}</button>\n</form>\n</div>'
    )
    title = t("app.page_title", organisation=settings.deployment.organisation) if settings.deployment.organisation \
        else t("app.title")
    script = f'<script type="application/json" id="kit-sign-in-texts">{messages}</script>\n{SCRIPT}'
    return frame(settings, t, t("signin.page_title", title=title), body, script=script)
