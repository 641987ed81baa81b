"""The coaching chat (Gradio): coaching cards for agents, scenario gallery, essay reader and feedback for trainers.

One module per concern, each readable in one sitting:

- `strings`: every UI text in English and Chinese;
- `render`: pure functions from a turn, an essay or a scenario to escaped HTML (text from passages is never HTML);
- `state`: a browser session's turns, the Coach being served, and `CoachApp`, the response logic (no Gradio);
- `uploads`: adding essays (checks, the metadata form, the cleaning report, the trainer login, the same-site rule);
- `assets`: CSS and the presentation keys' script;
- `server`: the agents' Gradio layout, handlers and launch settings, and the trainer page's mount;
- `trainer`: the trainer page (feedback, "this answers that", rebuilds, adding essays), behind the trainer login.
Only `server` and `trainer` import gradio.

What a card says (key sentence, quotes, follow-ups, small talk, the situation) is decided in `coach.advice`, which
the command line uses too. The names below are the package's public surface (app.py, tests, benchmarks).
"""

from ..advice import Quote, combine_followup, convert_script, detect_lang, find_quotes, is_followup, small_talk
from .render import (
    answer_markdown,
    attribution,
    conversation_params,
    render_advice,
    render_card,
    render_essay,
    render_gallery,
    render_present,
    render_user,
    render_why,
    share_link,
    theme_label,
)
from .server import (
    CONCURRENCY,
    EXPORT_TTL_S,
    FEEDBACK_GROUP,
    MAX_SESSIONS,
    QUEUE_MAX_SIZE,
    build_demo,
    export_folder,
    launch_kwargs,
    page_base,
    queue_kwargs,
)
from .state import (
    LOAD_WAIT_S,
    MAX_TURNS_KEPT,
    SESSION_TTL_S,
    TOP_K,
    WARM_UP_QUESTIONS,
    CoachApp,
    CoachHolder,
    Session,
    Turn,
    english_summaries,
    first_pass,
    load_coach,
    recognise,
    related_themes,
    warm_up,
)
from .strings import LANG_CHOICES, SCRIPT_CHOICES, T, ui_text
from .uploads import (
    UPLOAD_EXTENSIONS,
    UPLOAD_MAX_BYTES,
    CleaningReport,
    EssayForm,
    added_essays,
    check_upload,
    foreign_origin,
    remove_upload,
    safe_upload_name,
    save_upload,
    trainer_auth,
    upload_config,
)

__all__ = [
    "Quote",
    "combine_followup",
    "convert_script",
    "detect_lang",
    "find_quotes",
    "is_followup",
    "small_talk",
    "answer_markdown",
    "attribution",
    "conversation_params",
    "render_advice",
    "render_card",
    "render_essay",
    "render_gallery",
    "render_present",
    "render_user",
    "render_why",
    "share_link",
    "theme_label",
    "CONCURRENCY",
    "EXPORT_TTL_S",
    "FEEDBACK_GROUP",
    "MAX_SESSIONS",
    "QUEUE_MAX_SIZE",
    "build_demo",
    "export_folder",
    "launch_kwargs",
    "page_base",
    "queue_kwargs",
    "LOAD_WAIT_S",
    "MAX_TURNS_KEPT",
    "SESSION_TTL_S",
    "TOP_K",
    "WARM_UP_QUESTIONS",
    "CoachApp",
    "CoachHolder",
    "Session",
    "Turn",
    "english_summaries",
    "first_pass",
    "load_coach",
    "recognise",
    "related_themes",
    "warm_up",
    "LANG_CHOICES",
    "SCRIPT_CHOICES",
    "T",
    "ui_text",
    "UPLOAD_EXTENSIONS",
    "UPLOAD_MAX_BYTES",
    "CleaningReport",
    "EssayForm",
    "added_essays",
    "check_upload",
    "foreign_origin",
    "remove_upload",
    "safe_upload_name",
    "save_upload",
    "trainer_auth",
    "upload_config",
]
