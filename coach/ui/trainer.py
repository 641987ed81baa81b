"""The trainer page (Gradio): served at /trainer behind the trainer login (see server.py), never on the agents' page.

- Feedback: situations of the cards marked, cards marked not helpful, uncovered questions (counted), their exports,
  and "this answers that": attach a question to the passage that answers it, or detach it (learned descriptions),
  their list and their export as situations.toml entries, and a rebuild with its progress.
- Why this passage: ask as an agent would, see each passage's scores, attach the question to the right passage.
- Add essay (COACH_ENABLE_UPLOAD=1): a file and its metadata, then the cleaning report, the rebuild with its
  progress, and "Coach now answers from N passages of this essay; try: ..."; removing an added essay likewise.

Labels and the rendered tables follow the language chosen at the top (English or Chinese; `?lang=zh` opens the
page in Chinese), like the agents' page.
"""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from ..corpus import SCRIPTS
from .render import esc, render_why
from .state import SESSION_TTL_S, TOP_K, CoachApp
from .strings import LANG_CHOICES, T
from .uploads import UPLOAD_EXTENSIONS, EssayForm, foreign_origin

log = logging.getLogger("coach.ui")

ADMIN_GROUP = "admin"  # one trainer action (add, remove, rebuild) at a time


def _allowed(app: CoachApp, request: gr.Request | None) -> str | None:
    """Why this request may not act for the trainer (None: it may). The page sits behind the login already; this
    re-checks the user and refuses requests sent from another site's page."""
    if app.admin_user and getattr(request, "username", None) != app.admin_user:
        return "this needs the trainer login"
    if (other := foreign_origin(request)) is not None:
        log.warning("refused a trainer action for a request from %r", other)
        return f"refused: the request came from another site ({other})"
    return None


def _header(lang: str) -> str:
    tr = T[lang]["trainer"]
    return f"<h1>{esc(tr['title'])}</h1><p>{esc(tr['tagline'])}</p>"


def _lang(value) -> str:
    return value if value in T else "en"


def build_trainer(app: CoachApp) -> gr.Blocks:
    """The trainer Blocks over the same CoachApp (the same Coach, store and settings) as the agents' page."""
    from .server import export_folder

    tr = T["en"]["trainer"]
    with gr.Blocks(title="Coach · trainer", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        with gr.Row():
            header = gr.HTML(_header("en"), elem_id="coach-trainer-header")
            lang = gr.Radio(
                LANG_CHOICES, value="en", label="Language · 语言", scale=0, min_width=170, elem_id="coach-trainer-lang"
            )
        tabs = {}
        with gr.Tabs(elem_id="coach-trainer-tabs"):
            # ------------------------------------------------------------------------ feedback and curation
            with gr.Tab(tr["tab_feedback"], id="feedback") as fb_tab:
                tabs["tab_feedback"] = fb_tab
                fb_refresh = gr.Button(T["en"]["fb_refresh"])
                md_sit = gr.Markdown(f"### {tr['fb_situations']}")
                fb_sit = gr.HTML()
                md_un = gr.Markdown(f"### {tr['fb_unhelpful']}")
                fb_un = gr.HTML(elem_id="coach-fb-unhelpful")
                md_gap = gr.Markdown(f"### {tr['fb_uncovered']}")
                fb_gap = gr.HTML(elem_id="coach-fb-gaps")
                md_eval = gr.Markdown(T["en"]["fb_eval_hint"])
                with gr.Row():
                    fb_gaps = gr.DownloadButton(T["en"]["fb_gaps"])
                    fb_eval = gr.DownloadButton(T["en"]["fb_eval"])
                md_curate = gr.Markdown(f"### {tr['curate_head']}\n{tr['curate_hint']}")
                with gr.Row():
                    c_question = gr.Dropdown(
                        [], label=tr["question"], allow_custom_value=True, elem_id="coach-c-question", scale=2
                    )
                    c_passage = gr.Dropdown(
                        [], label=tr["passage"], allow_custom_value=True, elem_id="coach-c-passage", scale=2
                    )
                with gr.Row():
                    c_attach = gr.Button(tr["attach"], variant="primary", elem_id="coach-c-attach")
                    c_detach = gr.Button(tr["detach"], elem_id="coach-c-detach")
                    c_rebuild = gr.Button(tr["rebuild"], elem_id="coach-c-rebuild")
                c_status = gr.Textbox(label=tr["status"], interactive=False, lines=2, elem_id="coach-c-status")
                md_learned = gr.Markdown(f"### {tr['learned_head']}")
                c_learned = gr.HTML(elem_id="coach-learned")
                c_export = gr.DownloadButton(tr["export_learned"])
            # ------------------------------------------------------------------------ why this passage
            with gr.Tab(tr["tab_why"], id="why") as tabs["tab_why"]:
                with gr.Row():
                    w_question = gr.Textbox(label=tr["ask"], scale=4, elem_id="coach-w-question")
                    w_ask = gr.Button(T["en"]["send"], variant="primary", scale=1, elem_id="coach-w-ask")
                w_table = gr.HTML(render_why(None, "en"), elem_id="coach-w-why")
                with gr.Row():
                    w_passage = gr.Dropdown(
                        [], label=tr["passage"], allow_custom_value=True, elem_id="coach-w-passage", scale=3
                    )
                    w_attach = gr.Button(tr["attach"], variant="primary", elem_id="coach-w-attach")
                    w_detach = gr.Button(tr["detach"], elem_id="coach-w-detach")
                    w_rebuild = gr.Button(tr["rebuild"], elem_id="coach-w-rebuild")
                w_status = gr.Textbox(label=tr["status"], interactive=False, lines=2, elem_id="coach-w-status")
            # ------------------------------------------------------------------------ adding an essay
            with gr.Tab(tr["tab_add"], id="add") as tabs["tab_add"]:
                uploads_off = gr.Markdown(
                    tr["uploads_off"], elem_id="coach-uploads-off", visible=not app.upload_enabled
                )
                up_file = gr.File(
                    label=tr["file"], file_types=list(UPLOAD_EXTENSIONS), type="filepath", elem_id="coach-up-file"
                )
                with gr.Row():
                    up_title = gr.Textbox(label=tr["essay_title"], elem_id="coach-up-title")
                    up_author = gr.Textbox(label=tr["author"], elem_id="coach-up-author")
                with gr.Row():
                    up_org = gr.Textbox(label=tr["organisation"], elem_id="coach-up-org")
                    up_years = gr.Textbox(label=tr["years"], elem_id="coach-up-years")
                    up_script = gr.Dropdown(["", *SCRIPTS], value="", label=tr["script"], elem_id="coach-up-script")
                up_add = gr.Button(tr["add"], variant="primary", elem_id="coach-up-add", interactive=app.upload_enabled)
                up_report = gr.Textbox(label=tr["report"], interactive=False, lines=6, elem_id="coach-up-report")
                up_result = gr.Markdown(elem_id="coach-up-result")
                with gr.Row():
                    rm_pick = gr.Dropdown([], label=tr["remove_pick"], elem_id="coach-rm-pick", scale=3)
                    rm_btn = gr.Button(tr["remove"], elem_id="coach-rm", interactive=app.upload_enabled)
                rm_status = gr.Textbox(label=tr["status"], interactive=False, lines=2, elem_id="coach-rm-status")
        w_state = gr.State(None, time_to_live=SESSION_TTL_S)  # the trainer's last question (Why this passage)

        # ---------------------------------------------------------------------------- handlers

        def feedback_view(lg="en", request: gr.Request | None = None):
            if why := _allowed(app, request):
                return why, "", "", None, None, gr.update(), gr.update(), "", None
            lg = _lang(lg)
            folder = export_folder()
            sit, un, gap = app.feedback_html(lg)
            return (
                sit,
                un,
                gap,
                str(app.export_gaps(folder)),
                str(app.export_eval(folder)),
                gr.update(choices=app.feedback_questions()),
                gr.update(choices=app.passage_choices()),
                app.learned_html(lg),
                str(app.export_learned(folder)),
            )

        fb_outputs = [fb_sit, fb_un, fb_gap, fb_gaps, fb_eval, c_question, c_passage, c_learned, c_export]
        # the language is the last input, with a default, so API callers may leave it out
        fb_refresh.click(feedback_view, [lang], fb_outputs, api_name="feedback")
        fb_tab.select(feedback_view, [lang], fb_outputs, api_name=False)

        def curate(attach: bool, question, passage, lg, request: gr.Request | None):
            if why := _allowed(app, request):
                return why, gr.update()
            ok, message = (
                app.attach(question or "", passage or "") if attach else app.detach(question or "", passage or "")
            )
            return message, app.learned_html(_lang(lg))

        def attach(question, passage, lg="en", request: gr.Request | None = None):
            return curate(True, question, passage, lg, request)

        def detach(question, passage, lg="en", request: gr.Request | None = None):
            return curate(False, question, passage, lg, request)

        c_attach.click(attach, [c_question, c_passage, lang], [c_status, c_learned], api_name="attach")
        c_detach.click(detach, [c_question, c_passage, lang], [c_status, c_learned], api_name="detach")

        def rebuild(request: gr.Request, progress=gr.Progress()):
            if why := _allowed(app, request):
                return why
            try:
                return app.rebuild(lambda f, m: progress(f, desc=m))
            except Exception as exc:  # noqa: BLE001 - said in one line; the previous index keeps serving
                log.exception("rebuild failed")
                return f"rebuild failed: {exc} (the previous index is still in use)"

        admin = dict(concurrency_limit=1, concurrency_id=ADMIN_GROUP)
        c_rebuild.click(rebuild, None, [c_status], api_name="rebuild", **admin)
        w_rebuild.click(rebuild, None, [w_status], api_name=False, **admin)

        def why_ask(question, lg="en", request: gr.Request | None = None):
            if why := _allowed(app, request):
                return why, gr.update(), None
            coach = app.holder.get(timeout=60)
            if coach is None:
                return "Coach is still loading", gr.update(), None
            answer = coach.ask(question or "", top_k=TOP_K, diverse=True)
            choices = [(f"{h.chunk.id} — {h.highlight[:40]}", h.chunk.id) for h in answer.results]
            shown = {c[1] for c in choices}
            rest = [c for c in app.passage_choices() if c[1] not in shown]
            return (
                render_why(answer, _lang(lg)),
                gr.update(choices=choices + rest, value=choices[0][1] if choices else None),
                answer.query,
            )

        w_ask.click(why_ask, [w_question, lang], [w_table, w_passage, w_state], api_name="why")
        w_question.submit(why_ask, [w_question, lang], [w_table, w_passage, w_state], api_name=False)

        def why_attach(passage, question, lg, request: gr.Request):
            return curate(True, question, passage, lg, request)[0]

        def why_detach(passage, question, lg, request: gr.Request):
            return curate(False, question, passage, lg, request)[0]

        w_attach.click(why_attach, [w_passage, w_state, lang], [w_status], api_name=False)
        w_detach.click(why_detach, [w_passage, w_state, lang], [w_status], api_name=False)

        def add_essay(path, title, author, organisation, years, script, request: gr.Request, progress=gr.Progress()):
            if why := _allowed(app, request):
                return why, "", gr.update()
            name = Path(str(path)).name if path else ""
            form = EssayForm(title or "", author or "", organisation or "", years or "", script or "")
            ok, text, report = app.add_essay(path, form, original_name=name)
            if not ok or report is None:
                return f"not added: {text}", "", gr.update()
            try:
                built = app.rebuild(lambda f, m: progress(f, desc=m))
            except Exception as exc:  # noqa: BLE001 - the essay is stored; the previous index keeps serving
                log.exception("rebuild failed")
                return text, f"rebuild failed: {exc} (the previous index is still in use; try Rebuild)", gr.update()
            n, question = app.essay_answers(report.essay_id)
            if n == 0:
                result = f"{built}. The essay is not in the index (see the report's warnings)."
            elif question:
                result = f"{built}.\n\n**Coach now answers from {n} passages of this essay; try: “{question}”**"
            else:
                result = (
                    f"{built}.\n\n**Coach now answers from {n} passages of this essay**; none of its own lines brought "
                    "it into the top 3: attach the questions it answers on the Feedback tab."
                )
            return text, result, gr.update(choices=app_added(), value=None)

        def app_added():
            from .uploads import added_essays

            return added_essays(app.settings)

        up_add.click(
            add_essay,
            [up_file, up_title, up_author, up_org, up_years, up_script],
            [up_report, up_result, rm_pick],
            api_name="add_essay",
            **admin,
        )

        def remove(name, request: gr.Request, progress=gr.Progress()):
            if why := _allowed(app, request):
                return why, gr.update()
            ok, text = app.remove_essay(name or "")
            if not ok:
                return f"not removed: {text}", gr.update()
            try:
                built = app.rebuild(lambda f, m: progress(f, desc=m))
            except Exception as exc:  # noqa: BLE001
                log.exception("rebuild failed")
                built = f"rebuild failed: {exc} (the previous index is still in use; try Rebuild)"
            return f"{text}\n{built}", gr.update(choices=app_added(), value=None)

        rm_btn.click(remove, [rm_pick], [rm_status, rm_pick], api_name="remove_essay", **admin)

        # ---------------------------------------------------------------------------- language

        # every text of the page that follows the language: (component, its update in language lg)
        def trainer(key: str):
            return lambda lg: T[lg]["trainer"][key]

        def heading(*keys: str):
            return lambda lg: "### " + "\n".join(T[lg]["trainer"][k] for k in keys)

        def label(text):
            return lambda lg: gr.update(label=text(lg))

        def value(text):
            return lambda lg: gr.update(value=text(lg))

        shared = lambda key: lambda lg: T[lg][key]  # noqa: E731 - the agents' page's strings
        texts = [
            (header, _header),
            *[(tab, lambda lg, k=k: gr.Tab(label=T[lg]["trainer"][k])) for k, tab in tabs.items()],
            (fb_refresh, value(shared("fb_refresh"))),
            (md_sit, heading("fb_situations")),
            (md_un, heading("fb_unhelpful")),
            (md_gap, heading("fb_uncovered")),
            (md_eval, shared("fb_eval_hint")),
            (fb_gaps, label(shared("fb_gaps"))),
            (fb_eval, label(shared("fb_eval"))),
            (md_curate, heading("curate_head", "curate_hint")),
            (md_learned, heading("learned_head")),
            (c_export, label(trainer("export_learned"))),
            (w_ask, value(shared("send"))),
            (uploads_off, trainer("uploads_off")),
            (c_question, label(trainer("question"))),
            *[(c, label(trainer("passage"))) for c in (c_passage, w_passage)],
            *[(c, label(trainer("status"))) for c in (c_status, w_status, rm_status)],
            *[(c, value(trainer("attach"))) for c in (c_attach, w_attach)],
            *[(c, value(trainer("detach"))) for c in (c_detach, w_detach)],
            *[(c, value(trainer("rebuild"))) for c in (c_rebuild, w_rebuild)],
            (w_question, label(trainer("ask"))),
            (up_file, label(trainer("file"))),
            (up_title, label(trainer("essay_title"))),
            (up_author, label(trainer("author"))),
            (up_org, label(trainer("organisation"))),
            (up_years, label(trainer("years"))),
            (up_script, label(trainer("script"))),
            (up_add, value(trainer("add"))),
            (up_report, label(trainer("report"))),
            (rm_pick, label(trainer("remove_pick"))),
            (rm_btn, value(trainer("remove"))),
        ]

        def relabel(lg, question, request: gr.Request):
            """Every label in the chosen language, and the tables re-rendered in it."""
            lg = _lang(lg)
            coach = app.holder.get(timeout=0) if question else None
            answer = coach.ask(question, top_k=TOP_K, diverse=True) if coach is not None else None
            return [*(text(lg) for _, text in texts), render_why(answer, lg), *feedback_view(lg, request)]

        relabel_outputs = [*(c for c, _ in texts), w_table, *fb_outputs]
        lang.change(relabel, [lang, w_state], relabel_outputs, api_name=False)

        def on_load(request: gr.Request):
            """`?lang=zh` opens the page in Chinese; the feedback tables and the added essays are filled in."""
            query = getattr(request, "query_params", None)
            lg = _lang(str(dict(query or {}).get("lang", "en")))
            return [lg, _header(lg), *feedback_view(lg, request), gr.update(choices=app_added())]

        page.load(on_load, None, [lang, header, *fb_outputs, rm_pick], api_name=False)
    return page
