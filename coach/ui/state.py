"""The app's state and response logic, free of Gradio objects so tests call it directly: a browser session's turns,
the Coach being served (loaded in the background, swapped whole after a rebuild), and `CoachApp`, which answers a
message (a question, a follow-up or small talk), stores an agent's marks (one per card), and does the trainer's
work: adding and removing essays, rebuilding, and "this answers that" (learned descriptions)."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import advice
from .. import learned as learned_stage
from ..advice import convert_script
from ..config import Settings
from ..export import csv_text
from ..feedback import FeedbackStore, eval_cases
from ..retrieve import Answer, Hit, sanitize_query
from ..themes import BY_ID, Theme
from .uploads import CleaningReport, EssayForm, remove_upload, save_upload

log = logging.getLogger("coach.ui")

MAX_TURNS_KEPT = 50  # per browser session
SESSION_TTL_S = 8 * 3600  # a browser session's state is dropped this long after its last change
LOAD_WAIT_S = 60.0  # a question asked while Coach loads waits this long, then gets the "loading" note
WARM_UP_QUESTIONS = ("how do I handle an angry caller", "客户在电话里骂人怎么办")
TOP_K = 3


@dataclass
class Turn:
    """One message and its answer, kept in the browser session."""

    message: str  # what the agent typed (sanitised, capped)
    searched: str  # the query searched (with the previous situation for a follow-up)
    answer: Answer
    theme_id: str = ""
    section: str = ""  # fallback label when no theme matched
    followup: bool = False
    truncated: bool = False
    lang: str = "en"  # language of the question (eval format)
    root: str = ""  # the situation a chain of follow-ups refers back to
    small_talk: str = ""  # "thanks", "hello", ... (advice.small_talk): a short reply, no search
    summaries: dict = field(default_factory=dict)  # chunk id -> the editors' English description of it
    marks: dict = field(default_factory=dict)  # chunk id -> (row id, helpful): this agent's mark on each card

    @property
    def theme(self) -> Theme | None:
        return BY_ID.get(self.theme_id)

    @property
    def shown(self) -> list[Hit]:
        """The advice on the card: none out of the domain (the nearest passages are unrelated by definition)."""
        return [] if self.answer.out_of_domain or self.small_talk else list(self.answer.results)

    def passages(self) -> list[dict]:
        return [{"id": h.chunk.id, "essay": h.essay.id, "highlight": h.highlight} for h in self.shown]


def english_summaries(index) -> dict[str, str]:
    """chunk id -> the first English situation description the editors wrote for it (corpus/situations.toml)."""
    out: dict[str, str] = {}
    for row in getattr(index, "situation_texts", None) or []:
        if row.get("lang") == "en" and row.get("text"):
            for chunk_id in row.get("chunks", ()):
                out.setdefault(chunk_id, row["text"])
    return out


def related_themes(theme: Theme | None, hits: list[Hit], n: int = 3) -> list[Theme]:
    """Situations to suggest after an answer (advice.related_themes over the passages shown)."""
    return advice.related_themes(theme, [h.chunk.text for h in hits], n)


def recognise(query: str, hits: list[Hit]) -> tuple[Theme | None, str]:
    """The situation recognised (advice.recognise), else the top passage's section or essay title as a label."""
    theme, _ = advice.recognise(query, [h.chunk.text for h in hits])
    if theme or not hits:
        return theme, ""
    return None, hits[0].chunk.section or hits[0].essay.title


def first_pass(coach) -> None:
    """One Chinese question through a freshly loaded Coach, before it serves: what every question needs the first
    time (the word cutter's dictionary, the theme vectors, the model's first pass, OpenCC) is paid here, once."""
    t0 = time.perf_counter()
    try:
        coach.ask(WARM_UP_QUESTIONS[-1], top_k=TOP_K, diverse=True)
        convert_script("客户", "hant"), convert_script("客戶", "hans")
    except Exception:
        log.exception("first pass failed; questions are still answered")
    log.info("first pass took %.1f s", time.perf_counter() - t0)


def warm_up(coach) -> None:
    """What only some questions need, loaded in the background once Coach serves: the bridge's CC-CEDICT (for English
    questions; a few seconds of CPU the first time, then read back from its parsed copy). `Coach.warm_up()` where it exists, else the warm-up questions (not
    recorded anywhere). A failure is logged, never raised: questions still work, the first English one slower."""
    t0 = time.perf_counter()
    try:
        fn = getattr(coach, "warm_up", None)
        if callable(fn):
            running = fn()
            if isinstance(running, threading.Thread):  # Coach.warm_up may run in a thread of its own
                running.join()
        else:
            for q in WARM_UP_QUESTIONS:
                coach.ask(q, top_k=TOP_K, diverse=True)
    except Exception:
        log.exception("warm-up failed; questions are still answered")
    log.info("warm-up took %.1f s", time.perf_counter() - t0)


def load_coach(settings: Settings, upload_dir: Path | None = None, live_dir: Path | None = None, embedder=None):
    """The Coach the app serves: the model and the index of corpus/ plus the added essays (built into
    `settings.index_dir` when missing or stale), then `first_pass`. `live_dir` is no longer used (kept for callers)."""
    from ..retrieve import Coach

    t0 = time.perf_counter()
    coach = Coach(settings.with_overrides(upload_dir=upload_dir), embedder=embedder, build=True)
    log.info("model and index loaded in %.1f s", time.perf_counter() - t0)
    first_pass(coach)
    return coach


class CoachHolder:
    """The Coach in use. Loaded once (in a background thread when preloading); swapped whole after a rebuild, so
    questions in flight finish on the one they started with."""

    def __init__(
        self, factory: Callable[[], Any] | None = None, coach=None, after_load: Callable[[Any], None] | None = None
    ):
        self._factory = factory
        self._after_load = after_load  # run in a thread of its own once a loaded Coach serves (warm-up)
        self._coach = coach
        self._error: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.rebuild_lock = threading.Lock()

    def start(self) -> None:
        """Load in a background thread (once)."""
        if self._coach is None and self._thread is None:
            self._thread = threading.Thread(target=self.get, name="coach-load", daemon=True)
            self._thread.start()

    @property
    def ready(self) -> bool:
        return self._coach is not None

    def get(self, wait: bool = True, timeout: float | None = None):
        """The Coach; loads it if needed. `wait=False` returns None at once while it loads elsewhere; `timeout`
        (seconds) bounds the wait for a load in progress, then None."""
        if self._coach is not None:
            return self._coach
        if not wait:
            acquired = self._lock.acquire(blocking=False)
        else:
            acquired = self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout))
        if not acquired:
            return None
        try:
            if self._coach is None and self._factory is not None:
                try:
                    self._coach = self._factory()
                    self._error = None
                    if self._after_load is not None:
                        threading.Thread(
                            target=self._after_load, args=(self._coach,), name="coach-warm-up", daemon=True
                        ).start()
                except Exception as exc:  # shown in the card; the next question retries
                    log.exception("Coach could not load")
                    self._error = str(exc)
            return self._coach
        finally:
            self._lock.release()

    @property
    def error(self) -> str | None:
        return self._error

    def swap(self, coach) -> None:
        self._coach = coach


@dataclass
class Session:
    turns: list[Turn] = field(default_factory=list)
    present: Turn | None = None  # what presentation mode shows (last answer or scenario)
    present_idx: int = 0

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    def situation_root(self) -> str | None:
        """The situation a follow-up now refers to: that of the last question answered from the essays."""
        for t in reversed(self.turns):
            if not t.small_talk:
                return (t.root or t.message) if not t.answer.out_of_domain else None
        return None


class CoachApp:
    """The response logic behind the UI, free of Gradio objects so tests can call it directly."""

    def __init__(
        self,
        holder: CoachHolder,
        store: FeedbackStore,
        settings: Settings | None = None,
        upload_dir: Path | None = None,
        live_dir: Path | None = None,
        upload_enabled: bool = False,
        admin_user: str | None = None,
    ):
        self.holder = holder
        self.store = store
        self.settings = (settings or Settings()).with_overrides(upload_dir=upload_dir)
        self.upload_dir = self.settings.upload_dir  # live_dir: no longer used (the build reads the uploads itself)
        self.upload_enabled = upload_enabled
        self.admin_user = admin_user
        self._summaries: tuple[Any, dict[str, str]] = (None, {})

    def summaries(self, coach) -> dict[str, str]:
        """The English situation descriptions of the index `coach` serves (read once per loaded index)."""
        index = getattr(coach, "index", None)
        if self._summaries[0] is not index:
            self._summaries = (index, english_summaries(index))
        return self._summaries[1]

    def ask(self, message: str, session: Session | None, *, allow_followup: bool = True) -> Turn:
        """Answer one message, as a follow-up of the session's last turn when it reads like one."""
        session = session if session is not None else Session()
        text, truncated = sanitize_query(message)  # capped and stripped before anything else looks at it
        if kind := advice.small_talk(text):  # "thanks", "谢谢": a short reply, no search, not a content gap
            turn = Turn(
                message=text,
                searched=text,
                answer=Answer(text, True, [], truncated),
                truncated=truncated,
                lang=advice.detect_lang(text),
                root=text,
                small_talk=kind,
            )
            return self._keep(session, turn)
        root = session.situation_root()
        query, followup = advice.combine_followup(text, root) if allow_followup else (text, False)
        coach = self.holder.get(timeout=LOAD_WAIT_S)
        if coach is None:
            raise RuntimeError(self.holder.error or "not loaded")
        answer = coach.ask(query, top_k=TOP_K, diverse=True)
        theme, section = recognise(query, answer.results) if not answer.out_of_domain else (None, "")
        shown = {} if answer.out_of_domain else self.summaries(coach)
        turn = Turn(
            message=text,
            searched=answer.query,
            answer=answer,
            theme_id=theme.id if theme else "",
            section=section,
            followup=followup,
            truncated=truncated or answer.truncated,
            lang=advice.detect_lang(text),
            root=(root or text) if followup else text,
            summaries={h.chunk.id: shown[h.chunk.id] for h in answer.results if h.chunk.id in shown},
        )
        if text and answer.out_of_domain:  # a content gap, counted; an answered question stores nothing
            self.store.record_question(turn.searched, lang=turn.lang, out_of_domain=True)
        return self._keep(session, turn)

    @staticmethod
    def _keep(session: Session, turn: Turn) -> Turn:
        session.turns.append(turn)
        del session.turns[:-MAX_TURNS_KEPT]
        if turn.shown or not turn.small_talk:
            session.present, session.present_idx = turn, 0
        return turn

    def mark(self, session: Session | None, turn_index: int, helpful: bool | None, card: int = 0) -> int | None:
        """Mark one card (piece of advice) of one answer: helpful / not helpful, or None to un-mark it. A new mark
        stores a row, a changed one replaces it, un-marking deletes it. Returns the row id kept (None when un-marked,
        or when the turn or card is unknown). Raises StoreUnavailable when the store cannot take it."""
        if session is None or not 0 <= turn_index < len(session.turns):
            return None
        t = session.turns[turn_index]
        if not 0 <= card < len(t.shown):
            return None
        h = t.shown[card]
        row, before = t.marks.get(h.chunk.id, (None, None))
        if helpful is None:
            if row is not None:
                self.store.remove_mark(row)
                del t.marks[h.chunk.id]
            return None
        if row is not None and before == bool(helpful):
            return row
        if row is not None and self.store.change_mark(row, bool(helpful)):
            t.marks[h.chunk.id] = (row, bool(helpful))
            return row
        row = self.store.record_feedback(
            t.searched,
            bool(helpful),
            lang=t.lang,
            situation=t.theme_id or t.section,
            out_of_domain=t.answer.out_of_domain,
            passages=[{"id": h.chunk.id, "essay": h.essay.id, "highlight": h.highlight}],
        )
        t.marks[h.chunk.id] = (row, bool(helpful))
        return row

    def card_mark(self, session: Session | None, turn_index: int, card: int) -> bool | None:
        """This session's mark on one card: True, False, or None (unmarked or unknown)."""
        if session is None or not 0 <= turn_index < len(session.turns):
            return None
        t = session.turns[turn_index]
        if not 0 <= card < len(t.shown):
            return None
        return t.marks.get(t.shown[card].chunk.id, (None, None))[1]

    def essay(self, essay_id: str):
        coach = self.holder.get(wait=False)
        return coach.index.essays.get(essay_id) if coach and essay_id else None

    def essay_choices(self, lang: str = "en") -> list[tuple[str, str]]:
        """(title — author, essay id) for the reader's list, the author in the UI language."""
        coach = self.holder.get(wait=False)
        if coach is None:
            return []
        field_ = "author_zh" if lang == "zh" else "author_en"
        return [
            (f"{r.meta.title} — {getattr(r.meta, field_, '') or r.meta.author}", eid)
            for eid, r in coach.index.essays.items()
        ]

    def scenario(self, coach, theme: Theme, lang: str) -> Turn:
        """The trainer's scenario: the theme's example question answered (not part of the conversation)."""
        msg = theme.example(lang)
        ans = coach.ask(msg, top_k=TOP_K, diverse=True)
        shown = {} if ans.out_of_domain else self.summaries(coach)
        return Turn(
            message=msg,
            searched=ans.query,
            answer=ans,
            theme_id=theme.id,
            lang=advice.detect_lang(msg),
            root=msg,
            summaries={h.chunk.id: shown[h.chunk.id] for h in ans.results if h.chunk.id in shown},
        )

    # ---------------------------------------------------------------- trainer: essays and rebuilds

    def add_essay(
        self, path: str | Path | None, form: EssayForm | None = None, original_name: str = ""
    ) -> tuple[bool, str, CleaningReport | None]:
        """Check and store an essay with its metadata (under the upload folder, never corpus/). Returns (added,
        message, cleaning report). The index is rebuilt by `rebuild` (the trainer page does both in one step)."""
        if not self.upload_enabled:
            return False, "adding essays is switched off (COACH_ENABLE_UPLOAD=1 switches it on)", None
        if not path:
            return False, "no file was chosen; pick a .txt, .md or .html essay", None
        try:
            report, note = save_upload(
                Path(str(path)), original_name or Path(str(path)).name, form or EssayForm(), self.settings
            )
        except ValueError as exc:
            return False, str(exc), None
        except OSError as exc:
            return False, f"the essay could not be stored ({exc.strerror or exc}); check {self.upload_dir}", None
        return True, "\n".join(x for x in (note, report.text()) if x), report

    def remove_essay(self, name: str) -> tuple[bool, str]:
        """Delete an added essay (the index is rebuilt by `rebuild`)."""
        if not self.upload_enabled:
            return False, "adding and removing essays is switched off (COACH_ENABLE_UPLOAD=1 switches it on)"
        try:
            title = remove_upload(name, self.settings)
        except ValueError as exc:
            return False, str(exc)
        return True, f"removed 《{title}》 ({name})"

    def rebuild(self, progress: Callable[[float, str], None] | None = None) -> str:
        """Rebuild the index (corpus + added essays + learned descriptions, training when they changed) into
        `settings.index_dir` and swap it in; questions keep being answered from the previous index meanwhile."""
        from ..retrieve import Coach

        if not self.holder.rebuild_lock.acquire(blocking=False):
            return "a rebuild is already running"
        try:
            current = self.holder.get()
            if current is not None and current.settings == self.settings:
                current.rebuild(progress)
            else:  # another corpus or upload folder than the Coach was opened with: open (or build) its index
                steps: list[float] = []

                def noted(fraction: float, message: str) -> None:
                    steps.append(fraction)
                    if progress is not None:
                        progress(fraction, message)

                base = current.base_embedder() if current is not None else None
                fresh = Coach(self.settings, embedder=base, build=True, progress=noted)
                if not steps:  # its index was already there: a rebuild was asked for, so build one
                    fresh.rebuild(progress)
                self.holder.swap(fresh)
            coach = self.holder.get()
            m = coach.index.manifest
            learned = m.counts.get("learned_situations", 0)
            return f"index ready: {m.counts['essays']} essays, {m.counts['chunks']} passages, {learned} learned descriptions"
        finally:
            self.holder.rebuild_lock.release()

    def essay_answers(self, essay_id: str) -> tuple[int, str | None]:
        """(passages of the essay now served, a question it answers in the top 3, or None when none was found): the
        essay's title, then the first sentence of each of its passages, each asked as an agent would."""
        coach = self.holder.get(wait=False)
        if coach is None or essay_id not in coach.index.essays:
            return 0, None
        chunks = [c for c in coach.index.chunks if c.essay_id == essay_id]
        candidates = [coach.index.essays[essay_id].meta.title]
        candidates += [c.sentences[0].text[:60] for c in chunks if c.sentences]
        for question in candidates[:8]:
            answer = coach.ask(question, top_k=TOP_K, diverse=True)
            if not answer.out_of_domain and any(h.essay.id == essay_id for h in answer.results):
                return len(chunks), question
        return len(chunks), None

    # ---------------------------------------------------------------- trainer: "this answers that"

    def attach(self, question: str, passage_id: str) -> tuple[bool, str]:
        """Attach `question` to the passage that answers it (a learned description; effective after a rebuild)."""
        question, _ = sanitize_query(question)
        coach = self.holder.get(wait=False)
        if not question:
            return False, "type the question this passage answers"
        if coach is None:
            return False, "Coach is still loading; try again in a moment"
        chunk = next((c for c in coach.index.chunks if c.id == passage_id), None)
        if chunk is None:
            return False, f"there is no passage {passage_id!r}; pick one from the list"
        essay = coach.index.essays[chunk.essay_id]
        key = coach.key_sentence(question, chunk.id)
        others = [(c.start, c.end) for c in coach.index.chunks if c.essay_id == chunk.essay_id and c.id != chunk.id]
        anchor = learned_stage.anchor_for(
            essay.text, (chunk.start, chunk.end), [x.text for x in chunk.sentences], key, others
        )
        try:
            _, new = learned_stage.attach(self.settings.learned_file, question, chunk.essay_id, anchor, chunk.id)
        except (ValueError, OSError) as exc:
            return False, f"not attached: {exc}"
        head = "attached" if new else "already attached"
        return True, f"{head}: “{question}” → {chunk.id} (《{essay.meta.title}》); rebuild to put it to use"

    def detach(self, question: str, passage_id: str) -> tuple[bool, str]:
        """Detach a learned description (effective after a rebuild)."""
        question, _ = sanitize_query(question)
        try:
            n = learned_stage.detach(self.settings.learned_file, question, passage_id or None)
        except (ValueError, OSError) as exc:
            return False, f"not detached: {exc}"
        if not n:
            return False, f"“{question}” is not attached to {passage_id or 'any passage'}"
        return True, f"detached: “{question}” from {passage_id or 'every passage'}; rebuild to put it to use"

    def learned(self) -> list[learned_stage.Learned]:
        try:
            return learned_stage.load_learned(self.settings.learned_file)
        except ValueError:  # a hand-edited file gone bad: the build reports it
            return []

    def export_learned(self, folder: Path) -> Path:
        path = folder / "learned-situations.toml"
        path.write_text(learned_stage.export_toml(self.learned()), encoding="utf-8")
        return path

    def passage_choices(self) -> list[tuple[str, str]]:
        """(id — the passage's first words, id) of every passage served, for the trainer's curation lists."""
        coach = self.holder.get(wait=False)
        if coach is None:
            return []
        return [(f"{c.id} — {c.text[:40]}", c.id) for c in coach.index.chunks]

    # ---------------------------------------------------------------- trainer's feedback view

    def feedback_html(self, lang: str) -> tuple[str, str, str]:
        """The trainer's three tables: situations of the cards marked, cards marked not helpful, uncovered
        questions (counted, de-duplicated)."""
        from .render import table_html

        zh = lang == "zh"
        sit = [((BY_ID[s].label(lang) if s in BY_ID else s or "—"), n) for s, n in self.store.situations()]
        unhelpful = [
            (e.created_at, e.query, ", ".join(p["id"] for p in e.passages))
            for e in self.store.events(kind="feedback", helpful=False, limit=200)
        ]
        gaps = [(q, lg, n, last) for q, lg, n, last in self.store.uncovered(200)]
        return (
            table_html(["情况", "标记的卡片"] if zh else ["Situation", "Cards marked"], sit, lang),
            table_html(
                ["时间 (UTC)", "问题", "卡片的段落"] if zh else ["Time (UTC)", "Question", "Card's passage"],
                unhelpful,
                lang,
            ),
            table_html(
                ["问题", "语言", "次数", "最近"] if zh else ["Question", "Lang", "Times", "Last asked"], gaps, lang
            ),
        )

    def learned_html(self, lang: str) -> str:
        """The learned descriptions ("this answers that"), newest last."""
        from .render import table_html

        rows = [(x.text, x.passage, x.added) for x in self.learned()]
        heads = ["问题", "段落", "添加时间 (UTC)"] if lang == "zh" else ["Question", "Passage", "Added (UTC)"]
        return table_html(heads, rows, lang)

    def feedback_questions(self) -> list[str]:
        """The questions of the feedback view (cards marked, uncovered ones), for the trainer's curation list."""
        seen: dict[str, None] = {}
        for e in self.store.events(kind="feedback", limit=200):
            seen.setdefault(e.query)
        for q, *_ in self.store.uncovered(200):
            seen.setdefault(q)
        return list(seen)

    def export_gaps(self, folder: Path) -> Path:
        path = folder / "coach-content-gaps.csv"
        path.write_text(
            csv_text(["query", "lang", "times_asked", "last_asked"], self.store.uncovered()), encoding="utf-8"
        )  # formulas neutralised (issue 19)
        return path

    def export_eval(self, folder: Path) -> Path:
        path = folder / "coach-feedback-cases.jsonl"
        path.write_text(
            "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in eval_cases(self.store)), encoding="utf-8"
        )
        return path
