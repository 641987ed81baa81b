"""Coach's web app: `python app.py` (or `make run`) serves it at http://127.0.0.1:7860.

Building the UI is quick; the model and index load in a background thread (questions asked before they are ready get
a "still loading" notice). Configuration: COACH_ENABLE_UPLOAD=1 with COACH_ADMIN_USER / COACH_ADMIN_PASSWORD turns on
adding essays behind a login; COACH_FEEDBACK_DB moves the feedback database (default var/feedback.sqlite3).
"""

from coach.ui import build_demo, launch_kwargs, queue_kwargs

demo = build_demo()

if __name__ == "__main__":
    demo.queue(**queue_kwargs()).launch(server_name="127.0.0.1", server_port=7860, share=False, show_error=False,
                                        **launch_kwargs())
