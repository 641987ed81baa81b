"""The Gradio wiring: the layout, the event handlers and the server settings. Everything shown comes from
`render` (escaped HTML) and `strings`; the answers come from `state.CoachApp`. The only package that imports gradio.

Two audiences, two Blocks on one server (Gradio's `auth` covers a whole app, so one app cannot have both):
- the agents' page at `/`: chat, scenarios, essays, presentation; never a login, and nothing on it (page or API)
  returns what another agent asked;
- the trainer page at `/trainer` (websec.TRAINER_PATH), behind the trainer login (COACH_ADMIN_USER /
  COACH_ADMIN_PASSWORD), with uploads on or off: the feedback view and its exports, "this answers that"
  (curation), rebuilds, and, with COACH_ENABLE_UPLOAD=1, adding and removing essays. Without the login settings
  there is no trainer page (a plain note at `/trainer` says how to switch it on).
`build_demo` returns the agents' Blocks; its `launch` mounts the trainer Blocks on the same FastAPI server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import tempfile
import threading
import time
import types
import urllib.parse
from contextvars import ContextVar
from pathlib import Path

# No usage analytics or version check leave the machine (set before gradio is imported; Blocks also gets
# analytics_enabled=False).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from .. import websec  # noqa: E402
from ..advice import convert_script  # noqa: E402
from ..config import Settings  # noqa: E402
from ..feedback import FeedbackStore, StoreUnavailable  # noqa: E402
from ..retrieve import sanitize_query  # noqa: E402
from ..themes import BY_ID, FEATURED_THEMES, THEMES  # noqa: E402
from . import state  # noqa: E402
from .assets import CSS, ENTER_PRESENTATION, HEAD, LEAVE_PRESENTATION  # noqa: E402
from .render import (
    answer_markdown,
    conversation_params,
    esc,
    render_card,
    render_essay,  # noqa: E402
    render_gallery,
    render_present,
    render_user,
    render_why,
    share_link,
    theme_label,
)
from .state import (
    SESSION_TTL_S,
    TOP_K,
    CoachApp,
    CoachHolder,
    Session,
    load_coach,  # noqa: E402
    warm_up,
)
from .strings import LANG_CHOICES, SCRIPT_CHOICES, T, ui_text  # noqa: E402
from .trainer import build_trainer  # noqa: E402
from .uploads import UPLOAD_MAX_BYTES, trainer_auth, upload_config  # noqa: E402

log = logging.getLogger("coach.ui")

QUEUE_MAX_SIZE = 32  # waiting events beyond this get Gradio's "currently busy, please try again"
FEEDBACK_GROUP = "feedback"  # concurrency group of the feedback events: never refused by the queue bound
CONCURRENCY = 4  # questions answered at once
MAX_SESSIONS = 2000  # sessions kept in memory at once; the least recently used beyond this are dropped
EXPORT_TTL_S = 3600  # downloads (answer, content gaps, eval cases) are deleted after this long
TAB_IDS = ("chat", "gallery", "reader", "present")
MARK_VALUES = {"up": True, "down": False, "none": None}  # a card's mark choice -> helpful / not / un-marked

_EXPORTS: Path | None = None
_EXPORTS_LOCK = threading.Lock()


def export_folder(ttl_s: float = EXPORT_TTL_S) -> Path:
    """A new folder for one download, inside this process's export folder; folders older than `ttl_s` are deleted
    on the way, so downloads (one per answer shown) do not pile up on disk."""
    global _EXPORTS
    with _EXPORTS_LOCK:
        if _EXPORTS is None or not _EXPORTS.is_dir():
            _EXPORTS = Path(tempfile.mkdtemp(prefix="coach-exports-"))
        now = time.time()
        for old in _EXPORTS.iterdir():
            try:
                if now - old.stat().st_mtime > ttl_s:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        return Path(tempfile.mkdtemp(dir=_EXPORTS))


def page_base(request) -> str:
    """The address of the page that sent `request` (scheme, host, path, no query), for full share links: the
    browser's Referer, else the Host header (behind a proxy: X-Forwarded-Host / -Proto)."""
    raw = getattr(request, "headers", None) or {}
    try:
        headers = {str(k).lower(): str(v) for k, v in raw.items()}
    except AttributeError:
        headers = {}
    ref = urllib.parse.urlsplit(headers.get("referer", ""))
    if ref.scheme in ("http", "https") and ref.netloc:
        return f"{ref.scheme}://{ref.netloc}{ref.path or '/'}"
    host = headers.get("x-forwarded-host", "").split(",")[0].strip() or headers.get("host", "127.0.0.1")
    proto = headers.get("x-forwarded-proto", "http").split(",")[0].strip() or "http"
    return f"{proto}://{host}/"


def _state_session(s) -> Session:
    return s if isinstance(s, Session) else Session()


def _history(session: Session, lang: str, script: str) -> list[dict]:
    msgs = []
    for t in session.turns:
        msgs.append({"role": "user", "content": render_user(t.message)})
        msgs.append({"role": "assistant", "content": render_card(t, lang, script)})
    return msgs


def _examples(lang: str = "en", script: str = "original") -> list[dict]:
    """Example situations on the empty chat: the UI language's first."""
    order = ("zh", "en") if lang == "zh" else ("en", "zh")
    out = []
    for lg in order:
        for t in FEATURED_THEMES[:4]:
            text = t.example(lg)
            text = convert_script(text, script) if lg == "zh" else text
            out.append({"text": text, "display_text": text})
    return out


def _mark_choices(lang: str, script: str) -> list[tuple[str, str]]:
    labels = ui_text(lang, "mark_choices", script)
    return [(labels[0], "up"), (labels[1], "down"), (labels[2], "none")]


def _mark_value(helpful: bool | None) -> str | None:
    return None if helpful is None else ("up" if helpful else "down")


def _card_label(hit, script: str) -> str:
    key = convert_script(hit.highlight or hit.chunk.text, script)
    return key if len(key) <= 28 else key[:27] + "…"


def _header(lang: str, script: str) -> str:
    return f"<h1>{esc(ui_text(lang, 'title', script))}</h1><p>{esc(ui_text(lang, 'tagline', script))}</p>"


def _placeholder(lang: str, script: str) -> str:
    return esc(ui_text(lang, "tagline", script))


def build_demo(
    coach=None,
    *,
    settings: Settings | None = None,
    embedder=None,
    feedback_db: Path | str | None = None,
    upload_enabled: bool | None = None,
    upload_dir: Path | None = None,
    live_dir: Path | None = None,
    preload: bool = True,
    trainer_login: tuple[str, str] | None | bool = True,
) -> gr.Blocks:
    """The agents' app (its `launch` also serves the trainer page, see the module docstring). Pass `coach`
    (tests) or let it load in a background thread, so building the UI is quick. `trainer_login`: True reads
    COACH_ADMIN_USER / COACH_ADMIN_PASSWORD; a (user, password) pair sets it; None or False: no trainer page.
    `live_dir` is no longer used (kept for callers)."""
    settings = (settings or (coach.settings if coach is not None else Settings())).with_overrides(upload_dir=upload_dir)
    login: tuple[str, str] | None = (
        trainer_auth() if trainer_login is True else trainer_login if isinstance(trainer_login, tuple) else None
    )
    if upload_enabled is None:
        upload_enabled, _, reason = upload_config()
        upload_enabled = upload_enabled and login is not None
        if os.environ.get("COACH_ENABLE_UPLOAD") and not upload_enabled:
            log.warning(reason)
    if coach is None:
        holder = CoachHolder(lambda: load_coach(settings, embedder=embedder), after_load=warm_up)
        if preload:
            holder.start()  # first: the model loads while the UI is built and the server starts
    else:
        holder = CoachHolder(coach=coach)
    app = CoachApp(
        holder,
        FeedbackStore(feedback_db),
        settings,
        settings.upload_dir,
        None,
        upload_enabled,
        login[0] if login else None,
    )
    en = T["en"]

    # analytics off: nothing is sent to gradio.app; delete_cache: files handed to the browser (downloads) are
    # removed from gradio's cache hourly once an hour old
    with gr.Blocks(title="Coach", analytics_enabled=False, delete_cache=(EXPORT_TTL_S, EXPORT_TTL_S)) as demo:
        demo.coach_app = app  # for tests and app.py
        session = gr.State(None, time_to_live=SESSION_TTL_S)
        with gr.Row(equal_height=True, elem_id="coach-top"):
            header = gr.HTML(_header("en", "original"), elem_id="coach-header")
            lang = gr.Radio(
                LANG_CHOICES, value="en", label="Language · 语言", scale=0, min_width=170, elem_id="coach-lang"
            )
            script = gr.Radio(
                SCRIPT_CHOICES, value="original", label="Script · 字体", scale=0, min_width=250, elem_id="coach-script"
            )
        # shown while the model and index load (app start); a 1 s timer hides it once Coach is ready
        status = gr.Markdown(
            ui_text("en", "warming"), visible=not holder.ready, elem_id="coach-status", elem_classes=["coach-note"]
        )
        status_timer = gr.Timer(1.0, active=not holder.ready)
        tab = {}
        with gr.Tabs(elem_id="coach-tabs") as tabs:
            # ---------------------------------------------------------------- agent: the question box comes first,
            # so it is on the first screen of a laptop and a phone; the conversation follows below it
            with gr.Tab(en["tabs"]["chat"], id="chat") as tab["chat"]:
                with gr.Row(elem_id="coach-ask-row"):
                    # no max_length: a long paste reaches the server, which caps it and says so on the card
                    box = gr.Textbox(
                        label=en["input_label"],
                        placeholder=en["placeholder"],
                        scale=5,
                        min_width=220,
                        elem_id="coach-input",
                        lines=1,
                        max_lines=6,
                    )
                    with gr.Column(scale=1, min_width=120):
                        send = gr.Button(en["send"], variant="primary", elem_id="coach-send")
                        clear = gr.Button(en["clear"], size="sm", elem_id="coach-clear")
                chatbot = gr.Chatbot(
                    elem_id="coach-chat",
                    height=520,
                    examples=_examples(),
                    latex_delimiters=[],
                    buttons=["copy"],
                    show_label=False,
                    layout="panel",
                    placeholder=_placeholder("en", "original"),
                )
                # a mark per card (piece of advice) of the last answer: helpful, not helpful, or none (un-marked)
                with gr.Row(elem_id="coach-marks-row"):
                    marks = [
                        gr.Radio(
                            _mark_choices("en", "original"),
                            value=None,
                            label=en["mark_card"].format(i + 1, ""),
                            visible=False,
                            elem_id=f"coach-mark-{i + 1}",
                            elem_classes=["coach-card-mark"],
                            min_width=200,
                        )
                        for i in range(TOP_K)
                    ]
                hint = gr.Markdown(en["feedback_hint"], elem_classes=["coach-muted"])
                with gr.Row(elem_id="coach-related-row"):
                    related_label = gr.Markdown(f"**{en['related']}**", visible=False, min_width=160)
                    related = [gr.Button(visible=False, size="sm", elem_classes=["coach-related"]) for _ in range(3)]
                with gr.Row():
                    readers = [
                        gr.Button(en["read"].format(i + 1), visible=False, size="sm", elem_classes=["coach-read"])
                        for i in range(TOP_K)
                    ]
                with gr.Accordion(en["why"], open=False, elem_id="coach-why") as why_acc:
                    why = gr.HTML(render_why(None, "en"))
                with gr.Accordion(en["share"], open=False, elem_id="coach-share") as share_acc:
                    link = gr.Textbox(label=en["link"], interactive=False, buttons=["copy"], elem_id="coach-link")
                    export = gr.DownloadButton(en["export"], visible=False)
            # ---------------------------------------------------------------- scenarios (agents and trainers)
            with gr.Tab(en["tabs"]["gallery"], id="gallery") as tab["gallery"]:
                with gr.Row():
                    g_pick = gr.Dropdown(
                        [(t.en, t.id) for t in THEMES],
                        value=THEMES[0].id,
                        label=en["gallery_pick"],
                        scale=3,
                        min_width=200,
                    )
                    g_draw = gr.Button(en["gallery_draw"], scale=1, min_width=120)
                    g_show = gr.Button(
                        en["gallery_show"], variant="primary", scale=1, min_width=120, elem_id="coach-g-show"
                    )
                g_out = gr.HTML(elem_id="coach-gallery")
                g_why = gr.HTML()
            # ---------------------------------------------------------------- essay reader
            with gr.Tab(en["tabs"]["reader"], id="reader") as tab["reader"]:
                r_pick = gr.Dropdown([], label=en["reader_pick"], elem_id="coach-reader-pick")
                r_out = gr.HTML(render_essay(None, "en", "original"), elem_id="coach-reader")
                r_state = gr.State(None, time_to_live=SESSION_TTL_S)  # (essay id, span, passage span)
            # ---------------------------------------------------------------- presentation mode (fills the
            # window once opened; ← / → / Esc, see assets.HEAD)
            with gr.Tab(en["tabs"]["present"], id="present") as tab["present"]:
                with gr.Column(elem_id="coach-present-wrap"):
                    p_out = gr.HTML(render_present(None, 0, "en", "original"), elem_id="coach-present")
                    with gr.Row(elem_id="coach-present-controls"):
                        p_prev = gr.Button(en["present_prev"], elem_id="coach-p-prev", min_width=80)
                        p_next = gr.Button(en["present_next"], elem_id="coach-p-next", min_width=80)
                        p_full = gr.Button(en["present_full"], elem_id="coach-p-full", min_width=80)
                        p_exit = gr.Button(en["present_exit"], elem_id="coach-p-exit", min_width=80)

        # ------------------------------------------------------------------------ handlers

        def views(s: Session, lg: str, sc: str, base: str = ""):
            """Everything that follows the conversation: chat, scores, related situations, essay buttons, link."""
            last = s.last
            hits = last.shown if last else []
            rel = state.related_themes(last.theme, hits) if last and hits else []
            rel_updates = [
                gr.update(value=(convert_script(t.example(lg), sc) if lg == "zh" else t.example(lg)), visible=True)
                for t in rel
            ]
            rel_updates += [gr.update(visible=False)] * (3 - len(rel_updates))
            read_updates = [
                gr.update(visible=i < len(hits), value=ui_text(lg, "read", sc).format(i + 1)) for i in range(TOP_K)
            ]
            link_value = share_link([(t.message, t.followup) for t in s.turns], lg, sc, base) if s.turns else ""
            export_path = None
            if last and hits:
                export_path = export_folder() / "coach-answer.md"
                export_path.write_text(answer_markdown(last, lg, sc), encoding="utf-8")
            turn_index = len(s.turns) - 1
            mark_updates = [
                gr.update(
                    visible=i < len(hits),
                    choices=_mark_choices(lg, sc),
                    label=ui_text(lg, "mark_card", sc).format(i + 1, _card_label(hits[i], sc) if i < len(hits) else ""),
                    value=_mark_value(app.card_mark(s, turn_index, i)),
                )
                for i in range(TOP_K)
            ]
            return [
                _history(s, lg, sc),
                s,
                render_why(last.answer if last and hits else None, lg, sc),
                gr.update(value=f"**{ui_text(lg, 'related', sc)}**", visible=bool(rel)),
                *rel_updates,
                *read_updates,
                gr.update(value=link_value, label=ui_text(lg, "link", sc)),
                gr.update(
                    value=str(export_path) if export_path else None, visible=bool(hits), label=ui_text(lg, "export", sc)
                ),
                *mark_updates,
            ]

        view_outputs = [chatbot, session, why, related_label, *related, *readers, link, export, *marks]

        def respond(message, s, lg, sc, request: gr.Request, allow_followup=True):
            s = _state_session(s)
            base = page_base(request)
            if not sanitize_query(message or "")[0]:
                return ["", *views(s, lg, sc, base)]
            try:
                app.ask(message, s, allow_followup=allow_followup)
            except RuntimeError:
                gr.Warning(ui_text(lg, "loading") if not holder.error else ui_text(lg, "failed").format(holder.error))
                return [message, *views(s, lg, sc, base)]
            return ["", *views(s, lg, sc, base)]

        ask_opts = dict(concurrency_limit=CONCURRENCY, concurrency_id="ask")
        box.submit(respond, [box, session, lang, script], [box, *view_outputs], api_name="respond", **ask_opts)
        send.click(respond, [box, session, lang, script], [box, *view_outputs], api_name=False, **ask_opts)

        def ask_new(message, s, lg, sc, request: gr.Request):
            return respond(message, s, lg, sc, request, allow_followup=False)

        for b in related:
            b.click(ask_new, [b, session, lang, script], [box, *view_outputs], api_name=False, **ask_opts)

        def example(evt: gr.SelectData, s, lg, sc, request: gr.Request):
            value = evt.value.get("text", "") if isinstance(evt.value, dict) else str(evt.value)
            return ask_new(value, s, lg, sc, request)

        chatbot.example_select(example, [session, lang, script], [box, *view_outputs], api_name=False, **ask_opts)

        def on_clear(lg, sc):
            return ["", *views(Session(), lg, sc)]

        clear.click(on_clear, [lang, script], [box, *view_outputs], api_name=False)
        chatbot.clear(on_clear, [lang, script], [box, *view_outputs], api_name=False)

        def mark_card(i, choice, s, lg):
            """The agent's mark on card i of the last answer: stored, replaced, or removed ("none")."""
            s = _state_session(s)
            try:
                app.mark(s, len(s.turns) - 1, MARK_VALUES.get(choice), card=i)
            except StoreUnavailable as exc:  # refused, and said so: never acknowledged and lost
                gr.Warning(str(exc))
                return gr.update(value=_mark_value(app.card_mark(s, len(s.turns) - 1, i))), s
            return gr.update(), s

        # Feedback never waits behind questions: the marks run outside the queue (queue=False: the browser posts
        # them straight to the server), and API marks (/mark, which gradio_client always sends through the queue)
        # have their own concurrency group with no limit, so they are started at once instead of piling up in the
        # bounded queue behind questions, and the queue's bound never refuses them (_FeedbackExemptMixin). A mark
        # is one small insert, update or delete.
        feedback_opts = dict(concurrency_limit=None, concurrency_id=FEEDBACK_GROUP, queue=False)
        for i, radio in enumerate(marks):
            radio.input(
                lambda choice, s, lg, i=i: mark_card(i, choice, s, lg),
                [radio, session, lang],
                [radio, session],
                api_name=False,
                **feedback_opts,
            )

        def mark_api(turn_index, helpful, card, s):
            """Helpful / not helpful for one card (piece of advice, 0-based `card`) of one answer, for API clients;
            marking a card again replaces its mark."""
            s = _state_session(s)
            try:
                row = app.mark(s, int(turn_index or 0), bool(helpful), card=int(card or 0))
            except StoreUnavailable as exc:
                return str(exc), s
            return ("stored" if row else "unknown card"), s

        def unmark_api(turn_index, card, s):
            """Take back the mark on one card: its row is deleted."""
            s = _state_session(s)
            try:
                known = app.card_mark(s, int(turn_index or 0), int(card or 0)) is not None
                app.mark(s, int(turn_index or 0), None, card=int(card or 0))
            except StoreUnavailable as exc:
                return str(exc), s
            return ("removed" if known else "no mark"), s

        m_turn, m_helpful = gr.Number(visible=False, precision=0), gr.Checkbox(visible=False)
        m_card = gr.Number(0, visible=False, precision=0)
        m_out, m_btn, u_btn = gr.Textbox(visible=False), gr.Button(visible=False), gr.Button(visible=False)
        m_btn.click(mark_api, [m_turn, m_helpful, m_card, session], [m_out, session], api_name="mark", **feedback_opts)
        u_btn.click(unmark_api, [m_turn, m_card, session], [m_out, session], api_name="unmark", **feedback_opts)

        def open_reader(n, s, lg, sc):
            s = _state_session(s)
            if not s.last or n >= len(s.last.shown):
                return gr.update(), gr.update(), None, gr.update()
            h = s.last.shown[n]
            rs = (h.essay.id, tuple(h.highlight_span), (h.chunk.start, h.chunk.end))
            return (
                gr.update(choices=app.essay_choices(lg), value=h.essay.id),
                render_essay(app.essay(h.essay.id), lg, sc, rs[1], rs[2]),
                rs,
                gr.Tabs(selected="reader"),
            )

        for i, b in enumerate(readers):
            b.click(
                lambda s, lg, sc, i=i: open_reader(i, s, lg, sc),
                [session, lang, script],
                [r_pick, r_out, r_state, tabs],
                api_name=False,
            ).then(
                None,
                None,
                None,
                js="() => { setTimeout(() => document.getElementById('coach-reader-mark')"
                "?.scrollIntoView({block: 'center'}), 300); }",
            )

        def reader_pick(eid, lg, sc):
            return render_essay(app.essay(eid), lg, sc), (eid, None, None)

        r_pick.input(reader_pick, [r_pick, lang, script], [r_out, r_state], api_name=False)

        def reader_render(rs, lg, sc):
            return render_essay(app.essay(rs[0]), lg, sc, rs[1], rs[2]) if rs else render_essay(None, lg, sc)

        def gallery(theme_id, s, lg, sc):
            s = _state_session(s)
            theme = BY_ID.get(theme_id) or THEMES[0]
            coach = holder.get(timeout=state.LOAD_WAIT_S)
            if coach is None:
                note = ui_text(lg, "failed", sc).format(holder.error) if holder.error else ui_text(lg, "loading", sc)
                return f'<p class="coach-note">{esc(note)}</p>', "", s
            turn = app.scenario(coach, theme, lg)
            s.present, s.present_idx = turn, 0
            return render_gallery(theme, turn, lg, sc), render_why(turn.answer if turn.shown else None, lg, sc), s

        g_show.click(gallery, [g_pick, session, lang, script], [g_out, g_why, session], api_name="scenario", **ask_opts)

        def draw(s, lg, sc):
            theme = random.choice(THEMES)
            return (theme.id, *gallery(theme.id, s, lg, sc))

        g_draw.click(draw, [session, lang, script], [g_pick, g_out, g_why, session], api_name=False, **ask_opts)

        def present(s, lg, sc, step=0):
            s = _state_session(s)
            if s.present is not None and s.present.shown:
                s.present_idx = (s.present_idx + step) % len(s.present.shown)
            return render_present(s.present, s.present_idx, lg, sc), s

        tab["present"].select(present, [session, lang, script], [p_out, session], api_name=False)
        tab["present"].select(None, None, None, js=ENTER_PRESENTATION)  # opening it fills the window
        p_full.click(None, None, None, js=ENTER_PRESENTATION)
        p_exit.click(None, None, None, js=LEAVE_PRESENTATION)
        p_prev.click(
            lambda s, lg, sc: present(s, lg, sc, -1), [session, lang, script], [p_out, session], api_name=False
        )
        p_next.click(lambda s, lg, sc: present(s, lg, sc, 1), [session, lang, script], [p_out, session], api_name=False)

        def relabel(s, lg, sc, rs, request: gr.Request):
            """Every label in the chosen language and script, and everything shown re-rendered in it."""
            s = _state_session(s)
            u = lambda k: ui_text(lg, k, sc)  # noqa: E731
            tab_names = u("tabs")
            return [
                _header(lg, sc),
                gr.update(label=u("input_label"), placeholder=u("placeholder")),
                gr.update(value=u("send")),
                gr.update(value=u("clear")),
                u("feedback_hint"),
                gr.update(label=u("why")),
                gr.update(label=u("share")),
                gr.update(label=u("gallery_pick"), choices=[(theme_label(t, "", lg, sc), t.id) for t in THEMES]),
                gr.update(value=u("gallery_draw")),
                gr.update(value=u("gallery_show")),
                gr.update(label=u("reader_pick"), choices=app.essay_choices(lg)),
                reader_render(rs, lg, sc),
                render_present(s.present, s.present_idx, lg, sc),
                gr.update(value=u("present_prev")),
                gr.update(value=u("present_next")),
                gr.update(value=u("present_full")),
                gr.update(value=u("present_exit")),
                *[gr.Tab(label=convert_script(tab_names[k], sc) if lg == "zh" else tab_names[k]) for k in TAB_IDS],
                gr.update(examples=_examples(lg, sc), placeholder=_placeholder(lg, sc)),
                *views(s, lg, sc, page_base(request))[1:],
            ]

        relabel_outputs = [
            header,
            box,
            send,
            clear,
            hint,
            why_acc,
            share_acc,
            g_pick,
            g_draw,
            g_show,
            r_pick,
            r_out,
            p_out,
            p_prev,
            p_next,
            p_full,
            p_exit,
            *[tab[k] for k in TAB_IDS],
            *view_outputs,
        ]
        lang.change(relabel, [session, lang, script, r_state], relabel_outputs, api_name=False)
        script.change(relabel, [session, lang, script, r_state], relabel_outputs, api_name=False)

        def on_load(s, request: gr.Request):
            """A shared link (?q=...&f=...&lang=...&script=...) replays its conversation, follow-ups included; also
            fills the essay list."""
            query = getattr(request, "query_params", None)
            items = (
                list(query.multi_items())
                if query is not None and hasattr(query, "multi_items")
                else list(dict(query or {}).items())
            )
            params = dict(items)
            lg = str(params.get("lang")) if params.get("lang") in ("en", "zh") else "en"
            sc = str(params.get("script")) if params.get("script") in ("original", "hans", "hant") else "original"
            s = _state_session(s)
            turns = conversation_params(items)
            if turns and holder.get(timeout=state.LOAD_WAIT_S) is not None:
                for message, followup in turns[: state.MAX_TURNS_KEPT]:
                    app.ask(message, s, allow_followup=followup)
            return [
                lg,
                sc,
                gr.update(choices=app.essay_choices(lg)),
                *loading_status(lg, sc),
                *views(s, lg, sc, page_base(request)),
            ]

        demo.load(on_load, [session], [lang, script, r_pick, status, status_timer, *view_outputs], api_name=False)

        def loading_status(lg, sc, ready=None):
            """The warming-up note while Coach loads (or why it could not); hidden, with its timer stopped, after."""
            if holder.ready if ready is None else ready:
                return gr.update(visible=False), gr.Timer(active=False)
            note = ui_text(lg, "failed", sc).format(holder.error) if holder.error else ui_text(lg, "warming", sc)
            return gr.update(value=note, visible=True), gr.Timer(active=True)

        def tick(lg, sc):
            ready = holder.ready  # once: the note, its timer and the essay list agree
            return [*loading_status(lg, sc, ready), gr.update(choices=app.essay_choices(lg)) if ready else gr.update()]

        status_timer.tick(
            tick, [lang, script], [status, status_timer, r_pick], api_name=False, queue=False, show_progress="hidden"
        )
    _feedback_passes_the_queue_bound(demo)
    demo.trainer = build_trainer(app) if login is not None else None  # for tests and the launch below
    _serve_trainer_page(demo, demo.trainer, login)
    return demo


# ---------------------------------------------------------------------------------------------- the trainer page


def _serve_trainer_page(demo: gr.Blocks, trainer: gr.Blocks | None, login: tuple[str, str] | None) -> None:
    """Make `demo.launch(...)` serve the trainer Blocks at websec.TRAINER_PATH of the same server, behind `login`
    (or, with no trainer page, a note there saying how to switch it on). Mounted in the server's lifespan, before
    the first request, with the same look and limits as the agents' page."""
    launch = demo.launch

    def launch_with_trainer(self, *args, **kwargs):
        app_kwargs = dict(kwargs.get("app_kwargs") or {})
        outer = app_kwargs.get("lifespan")

        @contextlib.asynccontextmanager
        async def lifespan(app):
            async with contextlib.AsyncExitStack() as stack:
                sub = _mount_trainer(app, trainer, login, kwargs)
                if sub is not None and trainer is not None:
                    await stack.enter_async_context(sub.router.lifespan_context(sub))
                    trainer.run_startup_events()
                    await trainer.run_extra_startup_events()
                if outer is not None:
                    await stack.enter_async_context(outer(app))
                yield

        app_kwargs["lifespan"] = lifespan
        return launch(*args, **{**kwargs, "app_kwargs": app_kwargs})

    demo.launch = types.MethodType(launch_with_trainer, demo)


def _mount_trainer(app, trainer: gr.Blocks | None, login: tuple[str, str] | None, launch: dict):
    """Mount the trainer Blocks on `app` (the agents' FastAPI app); returns the mounted app, or None when there is
    no trainer page (then a note is served in its place)."""
    from fastapi.responses import HTMLResponse

    if trainer is None or login is None:

        async def off():
            return HTMLResponse(
                "<p>The trainer page is off. Set COACH_ADMIN_USER and COACH_ADMIN_PASSWORD (the trainer login) and "
                "restart Coach to switch it on.</p>",
                status_code=404,
            )

        app.add_api_route(websec.TRAINER_PATH, off, methods=["GET"], include_in_schema=False)
        return None
    trainer.queue(**queue_kwargs())
    gr.mount_gradio_app(
        app,
        trainer,
        websec.TRAINER_PATH,
        auth=login,
        auth_message="Coach's trainer page: log in with the trainer login (COACH_ADMIN_USER).",
        show_error=False,
        max_file_size=UPLOAD_MAX_BYTES,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        footer_links=[],
        css=launch.get("css"),
        head=launch.get("head"),
        theme=launch.get("theme"),
    )
    from starlette.routing import Mount

    return next(r.app for r in app.routes if isinstance(r, Mount) and r.path == websec.TRAINER_PATH)


# ---------------------------------------------------------------------------------------------- the queue bound

_FEEDBACK_PUSH: ContextVar[bool] = ContextVar("coach_feedback_push", default=False)


class _FeedbackExemptMixin:
    """Gradio's queue refuses any event while `max_size` events of *any* group wait, so a burst of API marks
    (gradio_client always queues, even for queue=False events) could be refused behind questions, or behind each
    other. With this mixin the bound applies to everything but the feedback group: while a feedback event is
    pushed, `max_size` reads as None. A ContextVar keeps that to the pushing request's own asyncio task, so a
    question pushed at the same moment still sees the bound."""

    @property
    def max_size(self):
        return None if _FEEDBACK_PUSH.get() else self._coach_max_size

    @max_size.setter
    def max_size(self, value):
        self._coach_max_size = value

    async def push(self, body, request, username):
        from gradio import route_utils

        try:
            feedback = route_utils.get_fn(self.blocks, None, body).concurrency_id == FEEDBACK_GROUP
        except Exception:  # noqa: BLE001 - an unknown function: let Gradio's own push answer it
            feedback = False
        token = _FEEDBACK_PUSH.set(feedback)
        try:
            return await super().push(body, request, username)
        finally:
            _FEEDBACK_PUSH.reset(token)


def _feedback_passes_the_queue_bound(demo: gr.Blocks) -> None:
    """Make `demo.queue(...)` install a queue whose bound spares feedback events (see _FeedbackExemptMixin)."""
    configure = demo.queue

    def queue(self, *args, **kwargs):
        out = configure(*args, **kwargs)
        q = getattr(self, "_queue", None)  # None when `queue` is stubbed out (tests of the launch settings)
        if q is not None and not isinstance(q, _FeedbackExemptMixin):
            limit = q.__dict__.pop("max_size", None)
            q.__class__ = type("CoachQueue", (_FeedbackExemptMixin, type(q)), {})
            q.max_size = limit
        return out

    demo.queue = types.MethodType(queue, demo)


def queue_kwargs() -> dict:
    return {"max_size": QUEUE_MAX_SIZE, "default_concurrency_limit": CONCURRENCY}


def launch_kwargs() -> dict:
    """What `launch` needs besides host, port, share=False and show_error=False: no monitoring endpoint, no MCP
    server, the upload size limit, no login (agents never log in; the trainer page has its own, see
    `_serve_trainer_page`), a bound on the sessions kept in memory, and the look (with the presentation keys'
    script)."""
    return {
        "enable_monitoring": False,
        "ssr_mode": False,
        "mcp_server": False,
        "max_file_size": UPLOAD_MAX_BYTES,
        "auth": None,
        "state_session_capacity": MAX_SESSIONS,
        "css": CSS,
        "head": HEAD,
        "app_kwargs": {"middleware": websec.middleware()},  # Host, headers, cookies, logins, bad calls (issue 19)
        "theme": gr.themes.Soft(
            primary_hue="amber", secondary_hue="blue", font=_FONTS, font_mono=["ui-monospace", "monospace"]
        ),
    }


# Local fonts only: no request to a web font service leaves the agent's browser.
_FONTS = ["system-ui", "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "sans-serif"]
