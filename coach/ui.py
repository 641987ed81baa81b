"""The coaching chat (Gradio): coaching cards for agents, scenario gallery, essay reader and feedback for trainers.

The only module that imports gradio. Everything shown is built here as HTML with `html.escape` applied to every piece
of text (passages, titles, authors, the user's own words), so an essay holding `<script>` shows those characters and
runs nothing. The pure helpers (follow-ups, quoted speech, the recognised situation, rendering) are plain functions,
tested without a server.

Added essays: uploads are saved to `var/uploads/` (gitignored; `corpus/` is never written by code). When there are
uploads, the app serves a *live corpus*, `var/live-corpus/` = a copy of every file in `corpus/` plus the uploads, with
its own index in `var/live-index/`, so the CLI's `index/` is never made stale by the app. See `corpus_with_uploads`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import os
import random
import re
import shutil
import tempfile
import threading
import time
import types
import urllib.parse
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

# No usage analytics or version check leave the machine (set before gradio is imported; Blocks also gets
# analytics_enabled=False).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from .config import PROJECT_ROOT, Settings
from .feedback import FeedbackStore, eval_cases
from .retrieve import MAX_QUERY_CHARS, Answer, Hit, sanitize_query
from .themes import BY_ID, FEATURED_THEMES, THEMES, Theme, score_themes

log = logging.getLogger("coach.ui")

UPLOAD_MAX_BYTES = 2 * 1024 * 1024
UPLOAD_EXTENSIONS = (".txt", ".md", ".html")
QUEUE_MAX_SIZE = 32              # waiting events beyond this get Gradio's "currently busy, please try again"
FEEDBACK_GROUP = "feedback"      # concurrency group of the feedback events: never refused by the queue bound
CONCURRENCY = 4                  # questions answered at once
MAX_TURNS_KEPT = 50              # per browser session
SESSION_TTL_S = 8 * 3600         # a browser session's state is dropped this long after its last change
MAX_SESSIONS = 2000              # sessions kept in memory at once; the least recently used beyond this are dropped
EXPORT_TTL_S = 3600              # downloads (answer, content gaps, eval cases) are deleted after this long
LOAD_WAIT_S = 60.0               # a question asked while Coach loads waits this long, then gets the "loading" note
WARM_UP_QUESTIONS = ("how do I handle an angry caller", "客户在电话里骂人怎么办")
TOP_K = 3

# ---------------------------------------------------------------------------------------------- UI strings

T: dict[str, dict[str, Any]] = {
    "en": {
        "title": "Coach",
        "tagline": "Advice from contact-centre veterans for the situation in front of you.",
        "input_label": "Describe the situation",
        "placeholder": "e.g. how do I handle an angry caller · 客户骂我怎么办",
        "send": "Ask", "clear": "New conversation",
        "situation": "Situation", "followup": "follow-up to", "closest": "Closest topic",
        "shortened": f"Your question was long, so only its first {MAX_QUERY_CHARS} characters were used.",
        "try_saying": "Try saying", "remember": "Remember",
        "show_passage": "Show the passage", "years": "{} years on the job",
        "ood_title": "The veterans have not written about this.",
        "ood_body": "Coach only answers from the veterans' essays, and none of them covers this question. "
                    "They write about situations like these:",
        "empty": "Type a situation to get advice.",
        "loading": "Coach is still loading the veterans' essays. Please ask again in a moment.",
        "warming": "Coach is warming up: loading the model and the veterans' essays. A question asked now is "
                   "answered as soon as it is ready.",
        "failed": "Coach could not open its index: {}",
        "related": "Related situations", "read": "Read essay {}",
        "why": "Why these passages", "why_hint": "Fused score = weighted sum of each ranker's normalised score: "
               "dense (meaning) search over the passages, their sentences and the editors' situation descriptions, "
               "and keyword (BM25) search over the passages and the descriptions, by words and, for Chinese "
               "questions, by character pairs.",
        "col_passage": "Passage", "col_fused": "Fused", "col_dense": "Dense cosine (rank)",
        "col_kw": "Keyword BM25 (rank)", "col_terms": "Matched terms",
        "feedback_hint": "Mark each card helpful (thumb up) or not helpful (thumb down). Only the question, the "
                         "passages shown and the time are stored.",
        "share": "Share / export", "link": "Link that reproduces this answer", "export": "Download this answer",
        "reader_pick": "Essay", "reader_empty": "Pick an essay, or open one from a card.",
        "gallery_pick": "Situation", "gallery_draw": "Draw a situation", "gallery_show": "Show the advice",
        "discuss": "Discuss",
        "present_prev": "◀ Previous", "present_next": "Next ▶",
        "present_empty": "Ask a question or open a scenario first; its advice is shown here one card at a time.",
        "fb_refresh": "Refresh", "fb_situations": "Situations asked", "fb_unhelpful": "Cards marked not helpful",
        "fb_uncovered": "Questions no veteran covered (content gaps)",
        "fb_gaps": "Content gaps (CSV)", "fb_eval": "Unhelpful + uncovered as eval cases (JSONL)",
        "fb_eval_hint": "Eval cases for `coach eval`: fill in `relevant` phrases for the unhelpful ones.",
        "no_rows": "Nothing yet.",
        "up_file": "Essay file (.txt, .md or .html, at most 2 MB)", "up_add": "Add essay",
        "up_rebuild": "Rebuild the index", "up_disabled": "Adding essays is switched off.",
        "meta": {"author": "Author", "organisation": "Organisation", "industry": "Industry", "role": "Role",
                 "years": "Years", "script": "Script", "source": "File", "repairs": "Repairs"},
    },
    "zh": {
        "title": "Coach 客服教练",
        "tagline": "针对你眼前的情况,听听资深客服人的建议。",
        "input_label": "描述你遇到的情况",
        "placeholder": "例如:客户在电话里骂我怎么办 · how do I handle an angry caller",
        "send": "提问", "clear": "新对话",
        "situation": "情况", "followup": "接着上一个问题", "closest": "最接近的话题",
        "shortened": f"你的问题太长,只使用了前 {MAX_QUERY_CHARS} 个字。",
        "try_saying": "试着这样说", "remember": "记住这句话",
        "show_passage": "查看原文段落", "years": "从业 {} 年",
        "ood_title": "资深客服们还没有写过这个问题。",
        "ood_body": "Coach 只根据资深客服的文章回答,这些文章都没有谈到这个问题。他们写过的情况包括:",
        "empty": "请输入你遇到的情况。",
        "loading": "Coach 正在加载文章,请稍后再问。",
        "warming": "Coach 正在启动:加载模型和资深客服的文章。现在提问,准备好后会立即回答。",
        "failed": "Coach 无法打开索引:{}",
        "related": "相关情况", "read": "阅读全文 {}",
        "why": "为什么是这些段落", "why_hint": "综合得分 = 各路检索归一化得分的加权和:段落、句子和编辑撰写的情境描述的语义(向量)检索,"
                  "以及段落和情境描述的关键词(BM25)检索(按词,中文问题也按相邻字对)。",
        "col_passage": "段落", "col_fused": "综合", "col_dense": "语义相似度(排名)",
        "col_kw": "关键词 BM25(排名)", "col_terms": "匹配词",
        "feedback_hint": "请为每张卡片标记有帮助(向上的拇指)或没帮助(向下的拇指)。只保存问题、显示的段落和时间。",
        "share": "分享 / 导出", "link": "可重现此回答的链接", "export": "下载此回答",
        "reader_pick": "文章", "reader_empty": "请选择一篇文章,或从卡片中打开。",
        "gallery_pick": "情况", "gallery_draw": "随机抽一个情况", "gallery_show": "显示建议",
        "discuss": "讨论",
        "present_prev": "◀ 上一条", "present_next": "下一条 ▶",
        "present_empty": "请先提问或打开一个情景,这里会一次显示一张建议卡片。",
        "fb_refresh": "刷新", "fb_situations": "被问到的情况", "fb_unhelpful": "被标为没帮助的卡片",
        "fb_uncovered": "没有文章覆盖的问题(内容缺口)",
        "fb_gaps": "内容缺口 (CSV)", "fb_eval": "没帮助 + 未覆盖的问题,评测格式 (JSONL)",
        "fb_eval_hint": "供 `coach eval` 使用:请为没帮助的问题补上 `relevant` 短语。",
        "no_rows": "暂无记录。",
        "up_file": "文章文件(.txt、.md 或 .html,最大 2 MB)", "up_add": "添加文章",
        "up_rebuild": "重建索引", "up_disabled": "添加文章功能已关闭。",
        "meta": {"author": "作者", "organisation": "机构", "industry": "行业", "role": "岗位",
                 "years": "年资", "script": "文字", "source": "文件", "repairs": "修复"},
    },
}

LANG_CHOICES = [("English", "en"), ("中文", "zh")]
SCRIPT_CHOICES = [("As written · 原文", "original"), ("简体", "hans"), ("繁體", "hant")]

# ---------------------------------------------------------------------------------------------- pure helpers

_CJK = re.compile(r"[\u3400-\u9fff]")


@lru_cache(maxsize=None)
def _opencc(config: str):
    from opencc import OpenCC

    return OpenCC(config)


def convert_script(text: str, script: str) -> str:
    """`text` in simplified ("hans") or traditional ("hant") characters; "original" leaves it as written."""
    if not text or script not in ("hans", "hant") or not _CJK.search(text):
        return text
    return _opencc("t2s" if script == "hans" else "s2t").convert(text)


def detect_lang(text: str) -> str:
    """The eval-file language of a question: "en", "zh" (simplified) or "zh-Hant"."""
    if not _CJK.search(text or ""):
        return "en"
    return "zh" if convert_script(text, "hans") == text else "zh-Hant"


_FOLLOWUP_EN = re.compile(
    r"^(and |but |so |then |ok(ay)?,? |also )?(what if|and if|but if|what about|how about|if (they|he|she|it)|"
    r"they |he |she |it |them |still|again|same|what else|anything else|and then|after that)", re.I)
_FOLLOWUP_ZH = ("那如果", "如果还", "要是还", "那要是", "那", "还是", "要是", "可是", "但是", "但如果", "如果他", "如果她",
                "如果对方", "如果客户还", "他还", "她还", "他们还", "对方还", "客户还", "还不", "仍然", "依然", "然后呢",
                "之后呢", "接下来", "再")
_PRONOUNS_EN = re.compile(r"\b(they|them|he|him|she|her|it|that)\b", re.I)
FOLLOWUP_MAX_CHARS = 80          # longer messages describe a new situation


def is_followup(text: str) -> bool:
    """A short message that leans on the previous turn ("what if they still won't calm down?", "那如果他还骂呢")."""
    t = (text or "").strip()
    if not t or len(t) > FOLLOWUP_MAX_CHARS:
        return False
    if _CJK.search(t):
        s = convert_script(t, "hans")
        return s.startswith(_FOLLOWUP_ZH) or (len(s) <= 12 and any(p in s for p in ("他", "她", "对方", "还")))
    return bool(_FOLLOWUP_EN.match(t)) or (len(t.split()) <= 6 and bool(_PRONOUNS_EN.search(t)))


def combine_followup(text: str, previous: str | None) -> tuple[str, bool]:
    """The query to search: the previous situation plus the follow-up when `text` is one, else `text` alone."""
    if previous and is_followup(text):
        return f"{previous} {text.strip()}", True
    return text.strip(), False


@dataclass(frozen=True)
class Quote:
    kind: str          # "say" (words an agent can say) or "remember" (a line a veteran was told / holds to)
    text: str          # without the quotation marks
    start: int         # offset of the opening mark in the passage


_QUOTE = re.compile(r"“([^“”]{6,90})”|「([^「」]{6,90})」|『([^『』]{6,90})』|\"([^\"\n]{6,90})\"")
_TOLD = ("告诉", "对我说", "跟我说", "和我说", "教导", "说过", "曾说", "讲过", "一句话", "名言", "常说", "叮嘱",
         "提醒", "告訴", "對我說", "跟我說", "說過", "常說", "一句話", "自问", "自問", "问自己", "問自己", "told me",
         "said to me", "reminded")
_SAY = ("客户说", "对客户", "跟客户", "向客户", "回复", "回答", "安抚", "向应聘者说", "向應聘者說", "客戶說", "對客戶",
        "跟客戶", "向客戶", "回覆", "安撫", "说", "說", "tell the customer", "say")
_ADDRESS = ("您", "你", "咱们", "我们一起", "请", "請")


def find_quotes(passage: str, limit: int = 2) -> list[Quote]:
    """Quoted speech in a passage, classified as something to say or something to remember.

    Only sentence-like quotes count: 6-90 characters with a clause mark or at least 10 characters, so quoted terms
    ("老派客服人") and slogans of a few characters are left out.
    """
    out: list[Quote] = []
    for m in _QUOTE.finditer(passage or ""):
        text = next(g for g in m.groups() if g is not None).strip()
        if len(text) < 10 and not re.search(r"[,,。!?!?、;;]", text):
            continue
        if not _CJK.search(text) and len(text.split()) < 4:
            continue
        before = passage[max(0, m.start() - 14):m.start()].lower()
        if any(k in before for k in _TOLD):
            kind = "remember"
        elif any(k in before for k in _SAY) or text.startswith(_ADDRESS) or "您" in text:
            kind = "say"
        else:
            kind = "remember"
        out.append(Quote(kind, text, m.start()))
        if len(out) >= limit:
            break
    return out


def recognise(query: str, hits: list[Hit]) -> tuple[Theme | None, str]:
    """The situation Coach recognised: a theme matched in the question, else in the advice, else the best section."""
    q = convert_script(query, "hans")
    scored = score_themes(q)
    if not scored and hits:
        scored = score_themes(convert_script(hits[0].chunk.text, "hans"))
    if scored:
        return scored[0][0], ""
    if hits:
        top = hits[0]
        return None, top.chunk.section or top.essay.title
    return None, ""


def related_themes(theme: Theme | None, query: str, hits: list[Hit], n: int = 3) -> list[Theme]:
    """Situations to suggest next: the theme's own neighbours, then themes the shown passages touch."""
    out: list[Theme] = []
    if theme:
        out.extend(BY_ID[r] for r in theme.related if r in BY_ID)
    text = convert_script(" ".join(h.chunk.text for h in hits), "hans")
    for t, _n in score_themes(text):
        if t not in out and t is not theme:
            out.append(t)
    for t in THEMES:
        if t not in out and t is not theme:
            out.append(t)
    return out[:n]


def _esc(text: str) -> str:
    return html.escape(text or "", quote=True)


def _esc_lines(text: str) -> str:
    return "<br>".join(_esc(line) for line in (text or "").split("\n"))


def _ui(lang: str, key: str, script: str = "original"):
    value = T.get(lang, T["en"])[key]
    return convert_script(value, "hant") if lang == "zh" and script == "hant" and isinstance(value, str) else value


def _years(years: str, lang: str, script: str) -> str:
    if not years:
        return ""
    y = years.strip()
    if re.fullmatch(r"\d+", y):
        return _ui(lang, "years", script).format(y)
    return y


def attribution(hit: Hit, lang: str, script: str) -> str:
    """Who said it: name or role, organisation, years on the job, essay title (escaped HTML)."""
    m = hit.essay
    parts = [f'<span class="coach-author">{_esc(convert_script(m.author, script))}</span>']
    if m.organisation:
        parts.append(_esc(convert_script(m.organisation, script)))
    if m.years:
        parts.append(_esc(_years(m.years, lang, script)))
    parts.append(f'<span class="coach-title">《{_esc(convert_script(m.title, script))}》</span>')
    return "— " + " · ".join(parts)


def _split_highlight(hit: Hit) -> tuple[str, str, str]:
    """The passage as (before, key sentence, after)."""
    text = hit.chunk.text
    a, b = hit.highlight_span[0] - hit.chunk.start, hit.highlight_span[1] - hit.chunk.start
    if 0 <= a < b <= len(text) and text[a:b] == hit.highlight:
        return text[:a], text[a:b], text[b:]
    i = text.find(hit.highlight) if hit.highlight else -1
    if i >= 0:
        return text[:i], hit.highlight, text[i + len(hit.highlight):]
    return text, "", ""


def render_advice(hit: Hit, n: int, lang: str, script: str, *, open_passage: bool = False) -> str:
    before, key, after = _split_highlight(hit)
    conv = lambda s: convert_script(s, script)  # noqa: E731
    key_html = _esc(conv(key or hit.highlight or hit.chunk.text))
    passage = f'{_esc_lines(conv(before))}<mark class="coach-mark">{_esc_lines(conv(key))}</mark>{_esc_lines(conv(after))}'
    quotes = ""
    key_plain = key or hit.highlight
    for q in [q for q in find_quotes(hit.chunk.text) if q.text not in key_plain][:1]:  # not a repeat of the key line
        label = _ui(lang, "try_saying" if q.kind == "say" else "remember", script)
        quotes += (f'<div class="coach-say coach-say-{q.kind}"><span class="coach-say-label">{_esc(label)}</span> '
                   f'“{_esc(conv(q.text))}”</div>')
    section = (f' <span class="coach-section">· {_esc(conv(hit.chunk.section))}</span>' if hit.chunk.section else "")
    return (f'<li class="coach-advice" data-chunk="{_esc(hit.chunk.id)}">'
            f'<div class="coach-key"><span class="coach-n">{n}</span><mark class="coach-mark">{key_html}</mark></div>'
            f'{quotes}'
            f'<details class="coach-details"{" open" if open_passage else ""}><summary>'
            f'{_esc(_ui(lang, "show_passage", script))}</summary><p class="coach-passage">{passage}</p></details>'
            f'<div class="coach-who">{attribution(hit, lang, script)}{section}</div></li>')


def theme_label(theme: Theme | None, fallback: str, lang: str, script: str) -> str:
    if theme:
        return convert_script(theme.label(lang), script) if lang == "zh" else theme.label(lang)
    return convert_script(fallback, script) if fallback else ""


@dataclass
class Turn:
    """One question and its answer, kept in the browser session."""

    message: str                 # what the agent typed (sanitised, capped)
    searched: str                # the query searched (with the previous situation for a follow-up)
    answer: Answer
    theme_id: str = ""
    section: str = ""            # fallback label when no theme matched
    followup: bool = False
    truncated: bool = False
    lang: str = "en"             # language of the question (eval format)
    root: str = ""               # the situation a chain of follow-ups refers back to

    @property
    def theme(self) -> Theme | None:
        return BY_ID.get(self.theme_id)

    def passages(self) -> list[dict]:
        return [{"id": h.chunk.id, "essay": h.essay.id, "highlight": h.highlight} for h in self.answer.results]


def render_card(turn: Turn, lang: str, script: str) -> str:
    """A coaching card: the situation recognised, then up to three pieces of advice (one line of HTML)."""
    ans = turn.answer
    head = ""
    if turn.truncated:
        head += f'<div class="coach-note">{_esc(_ui(lang, "shortened", script))}</div>'
    if not ans.query:
        return f'<div class="coach-card">{head}<p>{_esc(_ui(lang, "empty", script))}</p></div>'
    if ans.out_of_domain or not ans.results:
        topics = " · ".join(_esc(theme_label(t, "", lang, script)) for t in FEATURED_THEMES[:6])
        return (f'<div class="coach-card coach-ood">{head}<div class="coach-ood-title">'
                f'{_esc(_ui(lang, "ood_title", script))}</div><p>{_esc(_ui(lang, "ood_body", script))}</p>'
                f'<p class="coach-topics">{topics}</p></div>')
    label = theme_label(turn.theme, turn.section, lang, script)
    tag = _ui(lang, "situation" if turn.theme else "closest", script)
    follow = ""
    if turn.followup and turn.root:
        follow = (f' <span class="coach-followup">({_esc(_ui(lang, "followup", script))}: '
                  f'{_esc(turn.root[:80])})</span>')
    head += (f'<div class="coach-situation"><span class="coach-tag">{_esc(tag)}</span> '
             f'<span class="coach-situation-label">{_esc(label)}</span>{follow}</div>')
    items = "".join(render_advice(h, i, lang, script) for i, h in enumerate(ans.results, 1))
    return f'<div class="coach-card">{head}<ol class="coach-list">{items}</ol></div>'


def render_user(text: str) -> str:
    return f'<div class="coach-q">{_esc(text)}</div>'


def render_why(answer: Answer | None, lang: str, script: str = "original") -> str:
    """Dense, keyword and fused scores and the matched terms of each passage shown."""
    if answer is None or not answer.results:
        return f'<p class="coach-muted">{_esc(_ui(lang, "no_rows", script))}</p>'
    u = lambda k: _esc(_ui(lang, k, script))  # noqa: E731
    rows = []
    for i, h in enumerate(answer.results, 1):
        rank = lambda r: f" (#{r})" if r else " (—)"  # noqa: E731
        rows.append(
            f"<tr><td>{i}. <code>{_esc(h.chunk.id)}</code><br><small>{_esc(convert_script(h.highlight[:60], script))}"
            f"</small></td><td>{h.score:.4f}</td><td>{h.dense_score:.3f}{rank(h.dense_rank)}</td>"
            f"<td>{h.keyword_score:.2f}{rank(h.keyword_rank)}</td>"
            f"<td>{_esc(' · '.join(h.matched_terms)) or '—'}</td></tr>")
    return (f'<div class="coach-why"><p class="coach-muted">{u("why_hint")}</p><table><thead><tr>'
            f'<th>{u("col_passage")}</th><th>{u("col_fused")}</th><th>{u("col_dense")}</th><th>{u("col_kw")}</th>'
            f'<th>{u("col_terms")}</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def render_essay(record, lang: str, script: str, span: tuple[int, int] | None = None,
                 passage: tuple[int, int] | None = None) -> str:
    """The full cleaned essay with the key sentence (and its passage) highlighted, and its metadata."""
    if record is None:
        return f'<p class="coach-muted">{_esc(_ui(lang, "reader_empty", script))}</p>'
    m, text = record.meta, record.text
    labels = _ui(lang, "meta", script)
    meta_rows = "".join(
        f"<tr><th>{_esc(labels[k])}</th><td>{_esc(convert_script(str(v), script))}</td></tr>"
        for k, v in (("author", m.author), ("organisation", m.organisation), ("industry", m.industry),
                     ("role", m.role), ("years", m.years), ("script", m.script), ("source", m.source),
                     ("repairs", ", ".join(record.repairs))) if v)
    cuts = sorted({0, len(text), *[x for s in (span, passage) if s for x in s if 0 <= x <= len(text)]})
    body = []
    for a, b in zip(cuts, cuts[1:]):
        piece = _esc_lines(convert_script(text[a:b], script))
        in_span = span and span[0] <= a and b <= span[1]
        in_passage = passage and passage[0] <= a and b <= passage[1]
        if in_span:
            piece = f'<mark class="coach-mark" id="coach-reader-mark">{piece}</mark>'
        elif in_passage:
            piece = f'<span class="coach-passage-mark">{piece}</span>'
        body.append(piece)
    return (f'<article class="coach-essay"><h2>{_esc(convert_script(m.title, script))}</h2>'
            f'<table class="coach-meta">{meta_rows}</table><div class="coach-essay-text">{"".join(body)}</div>'
            f'</article>')


def render_present(turn: Turn | None, idx: int, lang: str, script: str) -> str:
    """Presentation mode: one piece of advice, large, with the situation above it."""
    if turn is None or not turn.answer.results:
        return f'<div class="coach-present"><p>{_esc(_ui(lang, "present_empty", script))}</p></div>'
    hits = turn.answer.results
    idx = idx % len(hits)
    label = theme_label(turn.theme, turn.section, lang, script)
    inner = render_advice(hits[idx], idx + 1, lang, script, open_passage=True)
    return (f'<div class="coach-present"><div class="coach-present-q">{_esc(turn.message)}</div>'
            f'<div class="coach-situation"><span class="coach-tag">{_esc(_ui(lang, "situation", script))}</span> '
            f'{_esc(label)} <span class="coach-muted">({idx + 1}/{len(hits)})</span></div>'
            f'<ol class="coach-list">{inner}</ol></div>')


def render_gallery(theme: Theme, turn: Turn, lang: str, script: str) -> str:
    """The trainer's scenario: the situation, the veterans' advice side by side, a discussion prompt."""
    prompt = theme.prompt(lang)
    prompt = convert_script(prompt, script) if lang == "zh" else prompt
    if turn.answer.out_of_domain or not turn.answer.results:
        cols = render_card(turn, lang, script)
    else:
        cols = "".join(f'<div class="coach-card coach-col"><ol class="coach-list">'
                       f'{render_advice(h, i, lang, script)}</ol></div>'
                       for i, h in enumerate(turn.answer.results, 1))
    return (f'<div class="coach-gallery"><div class="coach-situation"><span class="coach-tag">'
            f'{_esc(_ui(lang, "situation", script))}</span> {_esc(theme_label(theme, "", lang, script))}</div>'
            f'<div class="coach-present-q">{_esc(turn.message)}</div><div class="coach-cols">{cols}</div>'
            f'<div class="coach-discuss"><span class="coach-tag">{_esc(_ui(lang, "discuss", script))}</span> '
            f'{_esc(prompt)}</div></div>')


def answer_markdown(turn: Turn, lang: str, script: str) -> str:
    """A plain-text export of one answer (Markdown, every line from the data, nothing executable)."""
    lines = [f"# {turn.message}", ""]
    if turn.answer.out_of_domain or not turn.answer.results:
        lines.append(_ui(lang, "ood_title", script))
    else:
        lines += [f"**{_ui(lang, 'situation', script)}:** {theme_label(turn.theme, turn.section, lang, script)}", ""]
        for i, h in enumerate(turn.answer.results, 1):
            m = h.essay
            lines += [f"## {i}. {convert_script(h.highlight, script)}", "",
                      convert_script(h.chunk.text, script), "",
                      f"— {m.author}, {m.organisation}, {m.years}, 《{m.title}》 ({h.chunk.id})", ""]
    return "\n".join(lines)


def share_link(message: str, lang: str, script: str, base: str = "") -> str:
    return f"{base.rstrip('/')}/?" + urllib.parse.urlencode({"q": message, "lang": lang, "script": script})


# ---------------------------------------------------------------------------------------------- uploads

def _upload_dir() -> Path:
    v = os.environ.get("COACH_UPLOAD_DIR")
    return Path(v).expanduser().resolve() if v else PROJECT_ROOT / "var" / "uploads"


def corpus_with_uploads(settings: Settings, uploads_dir: Path, live_dir: Path) -> Settings:
    """Settings whose corpus is `corpus/` plus the uploaded essays (hook until the pipeline reads extra folders).

    With no uploads the settings are returned unchanged. Otherwise `live_dir/corpus` is refreshed to hold a copy of
    every file of the corpus folder and of the uploads (the corpus folder itself is only read), and the returned
    settings point at it and at `live_dir/index`, leaving the standard index untouched.
    """
    uploads = sorted(p for p in uploads_dir.glob("*") if p.is_file() and p.suffix.lower() in UPLOAD_EXTENSIONS) \
        if uploads_dir.is_dir() else []
    if not uploads:
        return settings
    live_corpus = live_dir / "corpus"
    tmp = live_dir / f".corpus-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for p in sorted(settings.corpus_dir.iterdir()):
        if p.is_file():
            shutil.copy2(p, tmp / p.name)
    for p in uploads:
        shutil.copy2(p, tmp / p.name)
    old = live_dir / f".old-{os.getpid()}-{threading.get_ident()}"
    if live_corpus.exists():
        os.rename(live_corpus, old)
    os.rename(tmp, live_corpus)
    shutil.rmtree(old, ignore_errors=True)
    return settings.with_overrides(corpus_dir=live_corpus, index_dir=live_dir / "index")


def safe_upload_name(name: str) -> str:
    stem, ext = os.path.splitext(os.path.basename(name or ""))
    stem = re.sub(r"[^0-9A-Za-z\u3400-\u9fff_-]+", "-", stem).strip("-")[:60] or "essay"
    return f"upload-{stem}{ext.lower()}"


def check_upload(path: str | Path | None, max_bytes: int = UPLOAD_MAX_BYTES) -> str | None:
    """Why an uploaded file is refused, or None when it is acceptable."""
    if not path:
        return "no file"
    p = Path(path)
    if p.suffix.lower() not in UPLOAD_EXTENSIONS:
        return f"only {', '.join(UPLOAD_EXTENSIONS)} files can be added"
    size = p.stat().st_size
    if size > max_bytes:
        return f"the file is {size // 1024} KB; the limit is {max_bytes // 1024} KB"
    if size == 0:
        return "the file is empty"
    return None


def corpus_report_line(path: Path, settings: Settings) -> str:
    """The corpus report for one file, as `coach corpus` prints it."""
    from .chunk import chunk_essay
    from .corpus import load_corpus

    with tempfile.TemporaryDirectory() as d:
        shutil.copy2(path, Path(d) / path.name)
        loaded = load_corpus(Path(d))
        if not loaded.essays:
            return "; ".join(loaded.warnings) or f"{path.name}: no readable essay"
        chunks = {e.meta.id: chunk_essay(e, settings.chunk) for e in loaded.essays}
        try:
            from .corpus import corpus_report, format_report

            return format_report(corpus_report(loaded.essays, chunks))
        except (ImportError, NotImplementedError, AttributeError, TypeError):
            e = loaded.essays[0]
            return (f"{path.name}: 《{e.meta.title}》 — {e.meta.author or '?'}, {len(e.text)} characters, "
                    f"{len(chunks[e.meta.id])} passages, repairs: {', '.join(e.repairs) or 'none'}")


def upload_config() -> tuple[bool, tuple[str, str] | None, str]:
    """(enabled, auth, reason) from COACH_ENABLE_UPLOAD / COACH_ADMIN_USER / COACH_ADMIN_PASSWORD."""
    if os.environ.get("COACH_ENABLE_UPLOAD", "") not in ("1", "true", "yes"):
        return False, None, "adding essays is off (set COACH_ENABLE_UPLOAD=1 to switch it on)"
    user, password = os.environ.get("COACH_ADMIN_USER", ""), os.environ.get("COACH_ADMIN_PASSWORD", "")
    if not user or not password:
        return False, None, ("COACH_ENABLE_UPLOAD=1 but COACH_ADMIN_USER / COACH_ADMIN_PASSWORD are not both set: "
                             "adding essays stays off, because it must sit behind a login")
    return True, (user, password), "adding essays is on, behind a login"


def foreign_origin(request) -> str | None:
    """The other site a request came from, or None when it came from this app's own pages (or from no page at all).

    A browser names the page that sent a POST in `Origin` (else `Referer`); it must be this server, as named by
    the request's `Host` (or `X-Forwarded-Host` behind a proxy). Clients that are not browsers (gradio_client,
    curl) send neither header and pass: they need the login like anyone else. A page on another site cannot hide
    its origin; "null" (sandboxed frames, file: pages) counts as foreign.
    """
    raw = getattr(request, "headers", None) or {}
    try:
        headers = {str(k).lower(): str(v) for k, v in raw.items()}
    except AttributeError:
        return None
    hosts = {h.strip().lower() for h in (headers.get("host", ""), *headers.get("x-forwarded-host", "").split(","))
             if h.strip()}
    for name in ("origin", "referer"):
        value = headers.get(name, "").strip()
        if not value:
            continue
        netloc = urllib.parse.urlsplit(value).netloc.lower() if value != "null" else ""
        return None if netloc and netloc in hosts else value[:200]
    return None


# ---------------------------------------------------------------------------------------------- the app's state

def first_pass(coach) -> None:
    """One Chinese question through a freshly loaded Coach, before it serves: what every question needs the first
    time (jieba's dictionary, the theme vectors, the model's first pass, OpenCC) is paid here, once."""
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
            if isinstance(running, threading.Thread):   # Coach.warm_up may run in a thread of its own
                running.join()
        else:
            for q in WARM_UP_QUESTIONS:
                coach.ask(q, top_k=TOP_K, diverse=True)
    except Exception:
        log.exception("warm-up failed; questions are still answered")
    log.info("warm-up took %.1f s", time.perf_counter() - t0)


def load_coach(settings: Settings, upload_dir: Path, live_dir: Path, embedder=None):
    """The Coach the app serves: the model and the index (built when missing or stale), then `first_pass`."""
    from .retrieve import Coach

    t0 = time.perf_counter()
    coach = Coach(corpus_with_uploads(settings, upload_dir, live_dir), embedder=embedder, build=True)
    log.info("model and index loaded in %.1f s", time.perf_counter() - t0)
    first_pass(coach)
    return coach


class CoachHolder:
    """The Coach in use. Loaded once (in a background thread when preloading); swapped whole after a rebuild, so
    questions in flight finish on the one they started with."""

    def __init__(self, factory: Callable[[], Any] | None = None, coach=None,
                 after_load: Callable[[Any], None] | None = None):
        self._factory = factory
        self._after_load = after_load      # run in a thread of its own once a loaded Coach serves (warm-up)
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
                        threading.Thread(target=self._after_load, args=(self._coach,), name="coach-warm-up",
                                         daemon=True).start()
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
    present: Turn | None = None      # what presentation mode shows (last answer or scenario)
    present_idx: int = 0

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None


class CoachApp:
    """The response logic behind the UI, free of Gradio objects so tests can call it directly."""

    def __init__(self, holder: CoachHolder, store: FeedbackStore, settings: Settings | None = None,
                 upload_dir: Path | None = None, live_dir: Path | None = None, upload_enabled: bool = False,
                 admin_user: str | None = None):
        self.holder = holder
        self.store = store
        self.settings = settings or Settings()
        self.upload_dir = upload_dir or _upload_dir()
        self.live_dir = live_dir or PROJECT_ROOT / "var" / "live"
        self.upload_enabled = upload_enabled
        self.admin_user = admin_user

    def ask(self, message: str, session: Session | None, *, allow_followup: bool = True) -> Turn:
        """Answer one message, as a follow-up of the session's last turn when it reads like one."""
        session = session if session is not None else Session()
        text, truncated = sanitize_query(message)      # capped and stripped before anything else looks at it
        prev = session.last
        root = (prev.root or prev.message) if prev and not prev.answer.out_of_domain else None
        query, followup = combine_followup(text, root) if allow_followup else (text, False)
        coach = self.holder.get(timeout=LOAD_WAIT_S)
        if coach is None:
            raise RuntimeError(self.holder.error or "not loaded")
        answer = coach.ask(query, top_k=TOP_K, diverse=True)
        theme, section = recognise(query, answer.results) if not answer.out_of_domain else (None, "")
        turn = Turn(message=text, searched=answer.query, answer=answer, theme_id=theme.id if theme else "",
                    section=section, followup=followup, truncated=truncated or answer.truncated,
                    lang=detect_lang(text), root=(root or text) if followup else text)
        if text:
            self.store.record_question(turn.searched, lang=turn.lang, situation=turn.theme_id or section,
                                       out_of_domain=answer.out_of_domain, passages=turn.passages())
        session.turns.append(turn)
        del session.turns[:-MAX_TURNS_KEPT]
        session.present, session.present_idx = turn, 0
        return turn

    def mark(self, session: Session | None, turn_index: int, helpful: bool) -> int | None:
        """Store helpful / not helpful for one card. Returns the row id, or None when the card is unknown."""
        if session is None or not 0 <= turn_index < len(session.turns):
            return None
        t = session.turns[turn_index]
        return self.store.record_feedback(t.searched, helpful, lang=t.lang, situation=t.theme_id or t.section,
                                          out_of_domain=t.answer.out_of_domain, passages=t.passages())

    def essay(self, essay_id: str):
        coach = self.holder.get(wait=False)
        return coach.index.essays.get(essay_id) if coach and essay_id else None

    def essay_choices(self) -> list[tuple[str, str]]:
        coach = self.holder.get(wait=False)
        if coach is None:
            return []
        return [(f"{r.meta.title} — {r.meta.author}", eid) for eid, r in coach.index.essays.items()]

    def add_essay(self, path: str | Path | None) -> tuple[bool, str]:
        """Save an uploaded essay (checked) and return its corpus report line. The index is rebuilt separately."""
        if not self.upload_enabled:
            return False, "adding essays is switched off"
        why = check_upload(path)
        if why:
            return False, why
        src = Path(str(path))  # check_upload has refused None
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        dest = self.upload_dir / safe_upload_name(src.name)
        if (self.settings.corpus_dir / dest.name).exists():
            return False, f"{dest.name} is already in the corpus"
        try:
            report = corpus_report_line(src, self.settings)
        except Exception as exc:  # a file the loader cannot read is not added
            return False, f"{src.name} cannot be read as an essay: {exc}"
        shutil.copyfile(src, dest)
        return True, report

    def rebuild(self, progress: Callable[[float, str], None] | None = None) -> str:
        """Rebuild the index (corpus + uploads) and swap it in; questions keep being answered meanwhile."""
        from .retrieve import Coach

        if not self.holder.rebuild_lock.acquire(blocking=False):
            return "a rebuild is already running"
        try:
            current = self.holder.get()
            settings = corpus_with_uploads(self.settings, self.upload_dir, self.live_dir)
            if current is not None and current.settings == settings:
                current.rebuild(progress)
            else:
                # a new corpus folder: open its index, building it when missing or stale
                self.holder.swap(Coach(settings, embedder=current.embedder if current else None, build=True,
                                       progress=progress))
            coach = self.holder.get()
            m = coach.index.manifest
            return f"index ready: {m.counts['essays']} essays, {m.counts['chunks']} passages"
        finally:
            self.holder.rebuild_lock.release()

    # ---------------------------------------------------------------- trainer's feedback view

    def feedback_html(self, lang: str) -> tuple[str, str, str]:
        def table(headers, rows):
            if not rows:
                return f'<p class="coach-muted">{_esc(_ui(lang, "no_rows"))}</p>'
            head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
            body = "".join("<tr>" + "".join(f"<td>{_esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            return f'<table class="coach-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

        zh = lang == "zh"
        sit = [((BY_ID[s].label(lang) if s in BY_ID else s or "—"), n) for s, n in self.store.situations()]
        unhelpful = [(e.created_at, e.query, ", ".join(p["id"] for p in e.passages))
                     for e in self.store.events(kind="feedback", helpful=False, limit=200)]
        gaps = [(q, lg, n, last) for q, lg, n, last in self.store.uncovered(200)]
        return (table(["情况", "次数"] if zh else ["Situation", "Times asked"], sit),
                table(["时间 (UTC)", "问题", "显示的段落"] if zh else ["Time (UTC)", "Question", "Passages shown"],
                      unhelpful),
                table(["问题", "语言", "次数", "最近"] if zh else ["Question", "Lang", "Times", "Last asked"], gaps))

    def export_gaps(self, folder: Path) -> Path:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["query", "lang", "times_asked", "last_asked"])
        w.writerows(self.store.uncovered())
        path = folder / "coach-content-gaps.csv"
        path.write_text(buf.getvalue(), encoding="utf-8")
        return path

    def export_eval(self, folder: Path) -> Path:
        path = folder / "coach-feedback-cases.jsonl"
        path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in eval_cases(self.store)),
                        encoding="utf-8")
        return path


# ---------------------------------------------------------------------------------------------- Gradio

CSS = """
.gradio-container { max-width: 1180px !important; margin: 0 auto; }
#coach-header h1 { margin: 0; font-size: 1.7rem; }
#coach-header p { margin: 0.2rem 0 0; color: #555; }
.coach-q { white-space: pre-wrap; }
.coach-card { background: #fffdf7; color: #1f2328; border: 1px solid #eadfc8; border-radius: 12px;
  padding: 14px 16px; line-height: 1.6; }
.coach-situation { font-weight: 600; margin-bottom: 8px; }
.coach-tag { display: inline-block; background: #1e3a5f; color: #fff; border-radius: 999px; padding: 1px 10px;
  font-size: 0.78rem; font-weight: 600; margin-right: 6px; vertical-align: 1px; }
.coach-followup, .coach-muted, .coach-section { color: #6b6b6b; font-weight: 400; font-size: 0.9em; }
.coach-list { list-style: none; padding: 0; margin: 0; }
.coach-advice { border-left: 4px solid #e3a008; padding: 6px 0 6px 12px; margin: 10px 0; }
.coach-key { font-size: 1.08rem; font-weight: 600; }
.coach-n { display: inline-block; min-width: 1.4em; height: 1.4em; line-height: 1.4em; text-align: center;
  border-radius: 50%; background: #e3a008; color: #fff; font-size: 0.8rem; margin-right: 6px; }
mark.coach-mark { background: #fde68a; color: #1f2328; padding: 0 2px; border-radius: 3px; }
.coach-say { margin: 6px 0; padding: 6px 10px; background: #ecfdf5; border-radius: 8px; color: #064e3b; }
.coach-say-remember { background: #eef2ff; color: #1e1b4b; }
.coach-say-label { font-weight: 700; font-size: 0.8rem; text-transform: uppercase; letter-spacing: .03em;
  margin-right: 4px; }
.coach-details summary { cursor: pointer; color: #1e3a5f; font-size: 0.9rem; }
.coach-passage { margin: 6px 0; color: #333; white-space: normal; }
.coach-who { color: #555; font-size: 0.88rem; margin-top: 4px; }
.coach-author { font-weight: 600; color: #333; }
.coach-note { background: #fff4e5; color: #7a4100; border-radius: 8px; padding: 4px 8px; margin-bottom: 8px; }
.coach-ood { border-color: #cbd5e1; background: #f8fafc; }
.coach-ood-title { font-weight: 700; font-size: 1.08rem; }
.coach-topics { color: #1e3a5f; }
.coach-why table, .coach-table, .coach-meta { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
.coach-why td, .coach-why th, .coach-table td, .coach-table th, .coach-meta td, .coach-meta th {
  border-bottom: 1px solid #e5e7eb; padding: 4px 6px; text-align: left; vertical-align: top; }
.coach-essay { background: #fff; color: #1f2328; padding: 12px 16px; border-radius: 12px; border: 1px solid #e5e7eb; }
.coach-essay-text { line-height: 1.8; margin-top: 12px; }
.coach-passage-mark { background: #fef9c3; }
.coach-cols { display: flex; gap: 12px; flex-wrap: wrap; margin: 10px 0; }
.coach-col { flex: 1 1 300px; }
.coach-discuss { background: #eef2ff; color: #1e1b4b; padding: 10px 14px; border-radius: 10px; font-size: 1.05rem; }
.coach-present-q { font-size: 1.1rem; color: #444; margin: 4px 0 10px; }
.coach-present { font-size: 1.75rem; line-height: 1.5; background: #fffdf7; color: #1f2328; padding: 24px 32px;
  border-radius: 16px; border: 1px solid #eadfc8; }
.coach-present .coach-key { font-size: 2.3rem; }
.coach-present .coach-who { font-size: 1.2rem; }
#coach-chat .message { max-width: 100% !important; }
"""


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


def _state_session(s) -> Session:
    return s if isinstance(s, Session) else Session()


def _history(session: Session, lang: str, script: str) -> list[dict]:
    msgs = []
    for t in session.turns:
        msgs.append({"role": "user", "content": render_user(t.message)})
        msgs.append({"role": "assistant", "content": render_card(t, lang, script)})
    return msgs


def _examples() -> list[dict]:
    out = []
    for t in FEATURED_THEMES[:4]:
        out.append({"text": t.example_en, "display_text": t.example_en})
    for t in FEATURED_THEMES[:4]:
        out.append({"text": t.example_zh, "display_text": t.example_zh})
    return out


def build_demo(coach=None, *, settings: Settings | None = None, embedder=None, feedback_db: Path | str | None = None,
               upload_enabled: bool | None = None, upload_dir: Path | None = None, live_dir: Path | None = None,
               preload: bool = True) -> gr.Blocks:
    """The whole app. Pass `coach` (tests) or let it load in a background thread, so building the UI is quick."""
    settings = settings or (coach.settings if coach is not None else Settings())
    upload_dir = upload_dir or _upload_dir()
    live_dir = live_dir or PROJECT_ROOT / "var" / "live"
    admin_user = None
    if upload_enabled is None:
        upload_enabled, auth, reason = upload_config()
        admin_user = auth[0] if auth else None
        if os.environ.get("COACH_ENABLE_UPLOAD") and not upload_enabled:
            log.warning(reason)
    if coach is None:
        holder = CoachHolder(lambda: load_coach(settings, upload_dir, live_dir, embedder), after_load=warm_up)
        if preload:
            holder.start()   # first: the model loads while the UI is built and the server starts
    else:
        holder = CoachHolder(coach=coach)
    app = CoachApp(holder, FeedbackStore(feedback_db), settings, upload_dir, live_dir, upload_enabled, admin_user)

    # analytics off: nothing is sent to gradio.app; delete_cache: files handed to the browser (downloads) are
    # removed from gradio's cache hourly once an hour old
    with gr.Blocks(title="Coach", analytics_enabled=False, delete_cache=(EXPORT_TTL_S, EXPORT_TTL_S)) as demo:
        demo.coach_app = app  # for tests and app.py
        session = gr.State(None, time_to_live=SESSION_TTL_S)
        with gr.Row(equal_height=True):
            header = gr.HTML(_header("en", "original"), elem_id="coach-header")
            lang = gr.Radio(LANG_CHOICES, value="en", label="Language · 语言", scale=0, min_width=180,
                            elem_id="coach-lang")
            script = gr.Radio(SCRIPT_CHOICES, value="original", label="Script · 字体", scale=0, min_width=260,
                              elem_id="coach-script")
        # shown while the model and index load (app start); a 1 s timer hides it once Coach is ready
        status = gr.Markdown(_ui("en", "warming"), visible=not holder.ready, elem_id="coach-status",
                             elem_classes=["coach-note"])
        status_timer = gr.Timer(1.0, active=not holder.ready)
        with gr.Tabs(elem_id="coach-tabs") as tabs:
            # ---------------------------------------------------------------- agent
            with gr.Tab("Coach · 教练", id="chat"):
                chatbot = gr.Chatbot(elem_id="coach-chat", height=560, examples=_examples(), latex_delimiters=[],
                                     feedback_options=("Like", "Dislike"), buttons=["copy"], show_label=False,
                                     layout="panel",
                                     placeholder=T["en"]["tagline"] + "<br>" + T["zh"]["tagline"])
                hint = gr.Markdown(T["en"]["feedback_hint"], elem_classes=["coach-muted"])
                with gr.Row():
                    box = gr.Textbox(label=T["en"]["input_label"], placeholder=T["en"]["placeholder"],
                                     max_length=MAX_QUERY_CHARS, scale=5, elem_id="coach-input", lines=1)
                    send = gr.Button(T["en"]["send"], variant="primary", scale=1, elem_id="coach-send")
                    clear = gr.Button(T["en"]["clear"], scale=1, elem_id="coach-clear")
                with gr.Row():
                    related_label = gr.Markdown(f"**{T['en']['related']}**", visible=False)
                    related = [gr.Button(visible=False, size="sm", elem_classes=["coach-related"]) for _ in range(3)]
                with gr.Row():
                    readers = [gr.Button(T["en"]["read"].format(i + 1), visible=False, size="sm",
                                         elem_classes=["coach-read"]) for i in range(TOP_K)]
                with gr.Accordion(T["en"]["why"], open=False, elem_id="coach-why") as why_acc:
                    why = gr.HTML(render_why(None, "en"))
                with gr.Accordion(T["en"]["share"], open=False) as share_acc:
                    link = gr.Textbox(label=T["en"]["link"], interactive=False, buttons=["copy"])
                    export = gr.DownloadButton(T["en"]["export"], visible=False)
            # ---------------------------------------------------------------- trainer: scenarios
            with gr.Tab("Scenarios · 情景", id="gallery"):
                with gr.Row():
                    g_pick = gr.Dropdown([(t.en, t.id) for t in THEMES], value=THEMES[0].id,
                                         label=T["en"]["gallery_pick"], scale=3)
                    g_draw = gr.Button(T["en"]["gallery_draw"], scale=1)
                    g_show = gr.Button(T["en"]["gallery_show"], variant="primary", scale=1, elem_id="coach-g-show")
                g_out = gr.HTML(elem_id="coach-gallery")
                g_why = gr.HTML()
            # ---------------------------------------------------------------- trainer: essay reader
            with gr.Tab("Essays · 文章", id="reader"):
                r_pick = gr.Dropdown([], label=T["en"]["reader_pick"], elem_id="coach-reader-pick")
                r_out = gr.HTML(render_essay(None, "en", "original"), elem_id="coach-reader")
                r_state = gr.State(None, time_to_live=SESSION_TTL_S)  # (essay id, span, passage span)
            # ---------------------------------------------------------------- trainer: presentation mode
            with gr.Tab("Present · 演示", id="present") as present_tab:
                p_out = gr.HTML(render_present(None, 0, "en", "original"), elem_id="coach-present")
                with gr.Row():
                    p_prev = gr.Button(T["en"]["present_prev"])
                    p_next = gr.Button(T["en"]["present_next"])
            # ---------------------------------------------------------------- trainer: feedback
            with gr.Tab("Feedback · 反馈", id="feedback") as fb_tab:
                fb_refresh = gr.Button(T["en"]["fb_refresh"])
                fb_sit_h = gr.Markdown(f"### {T['en']['fb_situations']}")
                fb_sit = gr.HTML()
                fb_un_h = gr.Markdown(f"### {T['en']['fb_unhelpful']}")
                fb_un = gr.HTML()
                fb_gap_h = gr.Markdown(f"### {T['en']['fb_uncovered']}")
                fb_gap = gr.HTML()
                fb_hint = gr.Markdown(T["en"]["fb_eval_hint"])
                with gr.Row():
                    fb_gaps = gr.DownloadButton(T["en"]["fb_gaps"])
                    fb_eval = gr.DownloadButton(T["en"]["fb_eval"])
            # ---------------------------------------------------------------- trainer: adding an essay
            with gr.Tab("Add essay · 添加文章", id="upload", visible=upload_enabled):
                up_file = gr.File(label=T["en"]["up_file"], file_types=list(UPLOAD_EXTENSIONS), type="filepath")
                with gr.Row():
                    up_add = gr.Button(T["en"]["up_add"], variant="primary")
                    up_rebuild = gr.Button(T["en"]["up_rebuild"])
                up_out = gr.Textbox(label="", interactive=False, lines=4)

        # ------------------------------------------------------------------------ handlers

        def views(s: Session, lg: str, sc: str):
            last = s.last
            hits = last.answer.results if last else []
            rel = related_themes(last.theme, last.searched, hits) if last and hits else []
            rel_updates = [gr.update(value=(convert_script(t.example(lg), sc) if lg == "zh" else t.example(lg)),
                                     visible=True) for t in rel]
            rel_updates += [gr.update(visible=False)] * (3 - len(rel_updates))
            read_updates = [gr.update(visible=i < len(hits), value=_ui(lg, "read", sc).format(i + 1))
                            for i in range(TOP_K)]
            link_value = share_link(last.message, lg, sc) if last and last.message else ""
            export_path = None
            if last and hits:
                export_path = export_folder() / "coach-answer.md"
                export_path.write_text(answer_markdown(last, lg, sc), encoding="utf-8")
            return [_history(s, lg, sc), s, render_why(last.answer if last else None, lg, sc),
                    gr.update(value=f"**{_ui(lg, 'related', sc)}**", visible=bool(rel))] + rel_updates + read_updates + [
                gr.update(value=link_value, label=_ui(lg, "link", sc)),
                gr.update(value=str(export_path) if export_path else None, visible=bool(hits),
                          label=_ui(lg, "export", sc))]

        view_outputs = [chatbot, session, why, related_label, *related, *readers, link, export]

        def respond(message, s, lg, sc, allow_followup=True):
            s = _state_session(s)
            if not sanitize_query(message or "")[0]:
                return ["", *views(s, lg, sc)]
            try:
                app.ask(message, s, allow_followup=allow_followup)
            except RuntimeError:
                gr.Warning(_ui(lg, "loading") if not holder.error else _ui(lg, "failed").format(holder.error))
                return [message, *views(s, lg, sc)]
            return ["", *views(s, lg, sc)]

        ask_opts = dict(concurrency_limit=CONCURRENCY, concurrency_id="ask")
        box.submit(respond, [box, session, lang, script], [box, *view_outputs], api_name="respond", **ask_opts)
        send.click(respond, [box, session, lang, script], [box, *view_outputs], api_name=False, **ask_opts)

        def ask_new(message, s, lg, sc):
            return respond(message, s, lg, sc, allow_followup=False)

        for b in related:
            b.click(ask_new, [b, session, lang, script], [box, *view_outputs], api_name=False, **ask_opts)

        def example(evt: gr.SelectData, s, lg, sc):
            value = evt.value.get("text", "") if isinstance(evt.value, dict) else str(evt.value)
            return ask_new(value, s, lg, sc)

        chatbot.example_select(example, [session, lang, script], [box, *view_outputs], api_name=False, **ask_opts)

        def on_clear(lg, sc):
            return ["", *views(Session(), lg, sc)]

        clear.click(on_clear, [lang, script], [box, *view_outputs], api_name=False)
        chatbot.clear(on_clear, [lang, script], [box, *view_outputs], api_name=False)

        def on_like(evt: gr.LikeData, s):
            s = _state_session(s)
            idx = evt.index if isinstance(evt.index, int) else evt.index[0]
            if idx % 2 == 1 and evt.liked in (True, False):
                app.mark(s, idx // 2, bool(evt.liked))

        # Feedback never waits behind questions: the thumbs run outside the queue (queue=False: the browser posts
        # them straight to the server), and API marks (/mark, which gradio_client always sends through the queue)
        # have their own concurrency group with no limit, so they are started at once instead of piling up in the
        # bounded queue behind questions, and the queue's bound never refuses them (_FeedbackExemptMixin). A mark
        # is one SQLite insert.
        feedback_opts = dict(concurrency_limit=None, concurrency_id=FEEDBACK_GROUP, queue=False)
        chatbot.like(on_like, [session], None, api_name=False, **feedback_opts)

        def mark_api(turn_index, helpful, s):
            """Helpful / not helpful for one card (what the thumbs in the chat do), for API clients."""
            row = app.mark(_state_session(s), int(turn_index or 0), bool(helpful))
            return "stored" if row else "unknown card"

        m_turn, m_helpful = gr.Number(visible=False, precision=0), gr.Checkbox(visible=False)
        m_out, m_btn = gr.Textbox(visible=False), gr.Button(visible=False)
        m_btn.click(mark_api, [m_turn, m_helpful, session], m_out, api_name="mark", **feedback_opts)

        def open_reader(n, s, lg, sc):
            s = _state_session(s)
            if not s.last or n >= len(s.last.answer.results):
                return gr.update(), gr.update(), None, gr.update()
            h = s.last.answer.results[n]
            rs = (h.essay.id, tuple(h.highlight_span), (h.chunk.start, h.chunk.end))
            return (gr.update(choices=app.essay_choices(), value=h.essay.id),
                    render_essay(app.essay(h.essay.id), lg, sc, rs[1], rs[2]), rs, gr.Tabs(selected="reader"))

        for i, b in enumerate(readers):
            b.click(lambda s, lg, sc, i=i: open_reader(i, s, lg, sc), [session, lang, script],
                    [r_pick, r_out, r_state, tabs], api_name=False).then(
                None, None, None, js="() => { setTimeout(() => document.getElementById('coach-reader-mark')"
                                     "?.scrollIntoView({block: 'center'}), 300); }")

        def reader_pick(eid, lg, sc):
            return render_essay(app.essay(eid), lg, sc), (eid, None, None)

        r_pick.input(reader_pick, [r_pick, lang, script], [r_out, r_state], api_name=False)

        def reader_render(rs, lg, sc):
            if not rs:
                return render_essay(None, lg, sc)
            return render_essay(app.essay(rs[0]), lg, sc, rs[1], rs[2])

        def gallery(theme_id, s, lg, sc):
            s = _state_session(s)
            theme = BY_ID.get(theme_id) or THEMES[0]
            coach = holder.get(timeout=LOAD_WAIT_S)
            if coach is None:
                note = _ui(lg, "failed", sc).format(holder.error) if holder.error else _ui(lg, "loading", sc)
                return f'<p class="coach-note">{_esc(note)}</p>', "", s
            msg = theme.example(lg)
            ans = coach.ask(msg, top_k=TOP_K, diverse=True)
            turn = Turn(message=msg, searched=ans.query, answer=ans, theme_id=theme.id, lang=detect_lang(msg),
                        root=msg)
            s.present, s.present_idx = turn, 0
            return render_gallery(theme, turn, lg, sc), render_why(ans, lg, sc), s

        g_show.click(gallery, [g_pick, session, lang, script], [g_out, g_why, session], api_name="scenario",
                     **ask_opts)

        def draw(s, lg, sc):
            theme = random.choice(THEMES)
            return (theme.id, *gallery(theme.id, s, lg, sc))

        g_draw.click(draw, [session, lang, script], [g_pick, g_out, g_why, session], api_name=False, **ask_opts)

        def present(s, lg, sc, step=0):
            s = _state_session(s)
            if s.present is not None and s.present.answer.results:
                s.present_idx = (s.present_idx + step) % len(s.present.answer.results)
            return render_present(s.present, s.present_idx, lg, sc), s

        present_tab.select(present, [session, lang, script], [p_out, session], api_name=False)
        p_prev.click(lambda s, lg, sc: present(s, lg, sc, -1), [session, lang, script], [p_out, session],
                     api_name=False)
        p_next.click(lambda s, lg, sc: present(s, lg, sc, 1), [session, lang, script], [p_out, session],
                     api_name=False)

        def feedback_view(lg):
            folder = export_folder()
            sit, un, gap = app.feedback_html(lg)
            return sit, un, gap, str(app.export_gaps(folder)), str(app.export_eval(folder))

        fb_outputs = [fb_sit, fb_un, fb_gap, fb_gaps, fb_eval]
        fb_refresh.click(feedback_view, [lang], fb_outputs, api_name="feedback")
        fb_tab.select(feedback_view, [lang], fb_outputs, api_name=False)

        def add_essay(path, request: gr.Request):
            if app.admin_user and getattr(request, "username", None) != app.admin_user:
                return "adding essays needs the administrator login"
            if (other := foreign_origin(request)) is not None:
                log.warning("refused to add an essay for a request from %r", other)
                return f"refused: the request came from another site ({other})"
            ok, text = app.add_essay(path)
            return ("added: " if ok else "not added: ") + text + ("\n→ rebuild the index to use it" if ok else "")

        def rebuild(request: gr.Request, progress=gr.Progress()):
            if app.admin_user and getattr(request, "username", None) != app.admin_user:
                return "rebuilding needs the administrator login"
            if (other := foreign_origin(request)) is not None:
                log.warning("refused to rebuild for a request from %r", other)
                return f"refused: the request came from another site ({other})"
            if not app.upload_enabled:
                return _ui("en", "up_disabled")
            started = time.time()
            try:
                msg = app.rebuild(lambda f, m: progress(f, desc=m))
            except Exception as exc:
                log.exception("rebuild failed")
                return f"rebuild failed: {exc} (the previous index is still in use)"
            return f"{msg} ({time.time() - started:.1f} s)"

        if upload_enabled:
            up_add.click(add_essay, [up_file], [up_out], api_name=False, concurrency_limit=1,
                         concurrency_id="admin")
            up_rebuild.click(rebuild, None, [up_out], api_name=False, concurrency_limit=1,
                             concurrency_id="admin").then(
                lambda: gr.update(choices=app.essay_choices()), None, [r_pick], api_name=False)

        def relabel(s, lg, sc, rs):
            s = _state_session(s)
            u = lambda k: _ui(lg, k, sc)  # noqa: E731
            return [
                _header(lg, sc), gr.update(label=u("input_label"), placeholder=u("placeholder")),
                gr.update(value=u("send")), gr.update(value=u("clear")), u("feedback_hint"),
                gr.update(label=u("why")), gr.update(label=u("share")),
                gr.update(label=u("gallery_pick"), choices=[(theme_label(t, "", lg, sc), t.id) for t in THEMES]),
                gr.update(value=u("gallery_draw")), gr.update(value=u("gallery_show")),
                gr.update(label=u("reader_pick")), reader_render(rs, lg, sc),
                render_present(s.present, s.present_idx, lg, sc),
                gr.update(value=u("present_prev")), gr.update(value=u("present_next")),
                gr.update(value=u("fb_refresh")), f"### {u('fb_situations')}", f"### {u('fb_unhelpful')}",
                f"### {u('fb_uncovered')}", u("fb_eval_hint"), gr.update(label=u("fb_gaps")),
                gr.update(label=u("fb_eval")), gr.update(label=u("up_file")), gr.update(value=u("up_add")),
                gr.update(value=u("up_rebuild")),
                *views(s, lg, sc)]

        relabel_outputs = [header, box, send, clear, hint, why_acc, share_acc, g_pick,
                           g_draw, g_show, r_pick, r_out, p_out, p_prev, p_next, fb_refresh, fb_sit_h, fb_un_h,
                           fb_gap_h, fb_hint, fb_gaps, fb_eval, up_file, up_add, up_rebuild, *view_outputs]
        lang.change(relabel, [session, lang, script, r_state], relabel_outputs, api_name=False)
        script.change(relabel, [session, lang, script, r_state], relabel_outputs, api_name=False)

        def on_load(s, request: gr.Request):
            """A shared link (?q=...&lang=...&script=...) reproduces its answer; also fills the essay list."""
            params = dict(getattr(request, "query_params", {}) or {})
            lg = str(params.get("lang")) if params.get("lang") in ("en", "zh") else "en"
            sc = str(params.get("script")) if params.get("script") in ("original", "hans", "hant") else "original"
            s = _state_session(s)
            q = params.get("q", "")
            if q and holder.get(timeout=LOAD_WAIT_S) is not None:
                app.ask(q, s, allow_followup=False)
            return [lg, sc, gr.update(choices=app.essay_choices()), *loading_status(lg, sc), *views(s, lg, sc)]

        demo.load(on_load, [session], [lang, script, r_pick, status, status_timer, *view_outputs], api_name=False)

        def loading_status(lg, sc, ready=None):
            """The warming-up note while Coach loads (or why it could not); hidden, with its timer stopped, after."""
            if holder.ready if ready is None else ready:
                return gr.update(visible=False), gr.Timer(active=False)
            note = _ui(lg, "failed", sc).format(holder.error) if holder.error else _ui(lg, "warming", sc)
            return gr.update(value=note, visible=True), gr.Timer(active=True)

        def tick(lg, sc):
            ready = holder.ready   # once: the note, its timer and the essay list agree
            return [*loading_status(lg, sc, ready), gr.update(choices=app.essay_choices()) if ready else gr.update()]

        status_timer.tick(tick, [lang, script], [status, status_timer, r_pick], api_name=False, queue=False,
                          show_progress="hidden")
    _feedback_passes_the_queue_bound(demo)
    return demo


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
        q = getattr(self, "_queue", None)   # None when `queue` is stubbed out (tests of the launch settings)
        if q is not None and not isinstance(q, _FeedbackExemptMixin):
            limit = q.__dict__.pop("max_size", None)
            q.__class__ = type("CoachQueue", (_FeedbackExemptMixin, type(q)), {})
            q.max_size = limit
        return out

    demo.queue = types.MethodType(queue, demo)


def _header(lang: str, script: str) -> str:
    return (f'<h1>{_esc(_ui(lang, "title", script))}</h1>'
            f'<p>{_esc(_ui(lang, "tagline", script))}</p>')


def queue_kwargs() -> dict:
    return {"max_size": QUEUE_MAX_SIZE, "default_concurrency_limit": CONCURRENCY}


def launch_kwargs() -> dict:
    """What `launch` needs besides host, port, share=False and show_error=False: no monitoring endpoint, no MCP
    server, the upload size limit, the login when adding essays is on, a bound on the sessions kept in memory,
    and the look."""
    enabled, auth, _ = upload_config()
    return {"enable_monitoring": False, "ssr_mode": False,
            "mcp_server": False, "max_file_size": UPLOAD_MAX_BYTES, "auth": auth if enabled else None,
            "state_session_capacity": MAX_SESSIONS, "css": CSS,
            "theme": gr.themes.Soft(primary_hue="amber", secondary_hue="blue", font=_FONTS,
                                    font_mono=["ui-monospace", "monospace"])}


# Local fonts only: no request to a web font service leaves the agent's browser.
_FONTS = ["system-ui", "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "sans-serif"]
