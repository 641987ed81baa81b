"""Coach's web app: `python app.py` (or `make run`) serves it at http://127.0.0.1:7860.

Importing this module builds `demo` and starts loading the model and index in a background thread, so the page is
served within seconds; a question asked while Coach warms up waits and is answered as soon as it is ready (the page
says so meanwhile), and what only some questions need (the dictionary for English ones) loads after that.

Two audiences on one server: agents use `/` and never log in; COACH_ADMIN_USER / COACH_ADMIN_PASSWORD turn on the
trainer page at `/trainer` behind that login (feedback view, "this answers that", rebuilds), and COACH_ENABLE_UPLOAD=1
adds adding essays to it (kept in COACH_UPLOAD_DIR); COACH_FEEDBACK_DB moves the feedback database (default var/feedback.sqlite3); GRADIO_SERVER_PORT changes the
port (the host stays 127.0.0.1); COACH_API_TOKEN makes the JSON API at /api/v1 (coach/api.py) ask for a bearer token;
COACH_ALLOWED_HOSTS adds names the server answers to besides loopback's (coach/websec.py).
"""

import logging
import os

# Nothing phones home: no gradio usage analytics or version check, no Hugging Face telemetry.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from coach import api  # noqa: E402 - after the environment is set
from coach.ui import build_demo, launch_kwargs, queue_kwargs  # noqa: E402

if __name__ == "__main__":  # start-up progress (model loaded, warm-up done) on the console
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("coach").setLevel(logging.INFO)

demo = build_demo()

if __name__ == "__main__":
    port = int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    demo.queue(**queue_kwargs()).launch(
        server_name="127.0.0.1",
        server_port=port,
        share=False,
        show_error=False,
        **api.launch_kwargs(demo, launch_kwargs()),
    )  # the chat, the trainer page (/trainer) and the JSON API
