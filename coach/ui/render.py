"""Pure rendering: a turn, an essay or a scenario in, one line of HTML out (or Markdown for the download).

Every piece of text (passages, titles, authors, the agent's own words) goes through `html.escape`, so an essay
holding `<script>` shows those characters and runs nothing. Nothing here talks to Gradio or the model.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from typing import Sequence

from ..advice import convert_script, find_quotes
from ..corpus import EssayMeta
from ..retrieve import Answer, Hit
from ..themes import FEATURED_THEMES, Theme
from .state import Turn
from .strings import ui_text


def esc(text: str) -> str:
    return html.escape(text or "", quote=True)


def esc_lines(text: str) -> str:
    return "<br>".join(esc(line) for line in (text or "").split("\n"))


def _meta_field(meta: EssayMeta, name: str, lang: str) -> str:
    """`author` / `organisation` / `years` in the UI language when essays.toml gives it, else as given."""
    return getattr(meta, f"{name}_{'zh' if lang == 'zh' else 'en'}", "") or getattr(meta, name, "")


def years_text(meta: EssayMeta, lang: str, script: str) -> str:
    y = (meta.years or "").strip()
    if re.fullmatch(r"\d+", y):
        return ui_text(lang, "years", script).format(y)
    return convert_script(_meta_field(meta, "years", lang), script) if y else ""


def attribution(meta: EssayMeta, lang: str, script: str) -> str:
    """Who said it, in the UI language: name or role, organisation, years on the job, essay title (escaped HTML)."""
    author = _meta_field(meta, "author", lang)
    if author == "unknown":
        author = ui_text(lang, "unknown_author", script)
    parts = [f'<span class="coach-author">{esc(convert_script(author, script))}</span>']
    if organisation := _meta_field(meta, "organisation", lang):
        parts.append(esc(convert_script(organisation, script)))
    if years := years_text(meta, lang, script):
        parts.append(esc(years))
    parts.append(f'<span class="coach-title">《{esc(convert_script(meta.title, script))}》</span>')
    return "— " + " · ".join(parts)


def attribution_text(meta: EssayMeta, lang: str, script: str) -> str:
    """The attribution as plain text (the Markdown download)."""
    return re.sub(r"<[^>]+>", "", html.unescape(attribution(meta, lang, script)))


def split_highlight(hit: Hit) -> tuple[str, str, str]:
    """The passage as (before, key sentence, after), the key sentence as it stands in the passage."""
    text = hit.chunk.text
    a, b = hit.highlight_span[0] - hit.chunk.start, hit.highlight_span[1] - hit.chunk.start
    if 0 <= a < b <= len(text):
        return text[:a], text[a:b], text[b:]
    i = text.find(hit.highlight) if hit.highlight else -1
    if i >= 0:
        return text[:i], hit.highlight, text[i + len(hit.highlight) :]
    return text, "", ""


def render_advice(hit: Hit, n: int, lang: str, script: str, *, summary: str = "", open_passage: bool = False) -> str:
    """One piece of advice: the key sentence, a line to say or remember, the English "in short" line (English UI,
    when the editors described the passage), the passage one click away, and who said it."""
    before, key, after = split_highlight(hit)
    conv = lambda s: convert_script(s, script)  # noqa: E731
    key_line = hit.highlight or key or hit.chunk.text
    passage = f'{esc_lines(conv(before))}<mark class="coach-mark">{esc_lines(conv(key))}</mark>{esc_lines(conv(after))}'
    extra = ""
    if summary and lang == "en":
        extra += (
            f'<div class="coach-short"><span class="coach-say-label">{esc(ui_text(lang, "in_short"))}</span> '
            f'{esc(summary)} <span class="coach-muted">({esc(ui_text(lang, "in_short_note"))})</span></div>'
        )
    for q in [q for q in find_quotes(hit.chunk.text) if q.text not in key_line][:1]:  # not a repeat of the key
        label = ui_text(lang, "try_saying" if q.kind == "say" else "remember", script)
        extra += (
            f'<div class="coach-say coach-say-{q.kind}"><span class="coach-say-label">{esc(label)}</span> '
            f"“{esc(conv(q.text))}”</div>"
        )
    section = f' <span class="coach-section">· {esc(conv(hit.chunk.section))}</span>' if hit.chunk.section else ""
    return (
        f'<li class="coach-advice" data-chunk="{esc(hit.chunk.id)}">'
        f'<div class="coach-key"><span class="coach-n">{n}</span><mark class="coach-mark">{esc(conv(key_line))}'
        f"</mark></div>{extra}"
        f'<details class="coach-details"{" open" if open_passage else ""}><summary>'
        f'{esc(ui_text(lang, "show_passage", script))}</summary><p class="coach-passage">{passage}</p></details>'
        f'<div class="coach-who">{attribution(hit.essay, lang, script)}{section}</div></li>'
    )


def theme_label(theme: Theme | None, fallback: str, lang: str, script: str) -> str:
    if theme:
        return convert_script(theme.label(lang), script) if lang == "zh" else theme.label(lang)
    return convert_script(fallback, script) if fallback else ""


def _ood_card(head: str, lang: str, script: str) -> str:
    topics = " · ".join(esc(theme_label(t, "", lang, script)) for t in FEATURED_THEMES[:6])
    return (
        f'<div class="coach-card coach-ood">{head}<div class="coach-ood-title">'
        f"{esc(ui_text(lang, 'ood_title', script))}</div><p>{esc(ui_text(lang, 'ood_body', script))}</p>"
        f'<p class="coach-topics">{topics}</p></div>'
    )


def render_card(turn: Turn, lang: str, script: str) -> str:
    """A coaching card: the situation recognised, then up to three pieces of advice (one line of HTML). Small talk
    gets a short reply, a question outside the domain a plain "not written about" with nothing from the essays."""
    head = f'<div class="coach-note">{esc(ui_text(lang, "shortened", script))}</div>' if turn.truncated else ""
    if not turn.answer.query:
        return f'<div class="coach-card">{head}<p>{esc(ui_text(lang, "empty", script))}</p></div>'
    if turn.small_talk:
        reply = ui_text(lang, "small_talk", script)[turn.small_talk]
        return f'<div class="coach-card coach-small-talk">{head}<p>{esc(convert_script(reply, script))}</p></div>'
    if not turn.shown:
        return _ood_card(head, lang, script)
    label = theme_label(turn.theme, turn.section, lang, script)
    tag = ui_text(lang, "situation" if turn.theme else "closest", script)
    follow = ""
    if turn.followup and turn.root:
        root = turn.root if len(turn.root) <= 80 else turn.root[:79] + "…"
        follow = (
            f' <span class="coach-followup">({esc(ui_text(lang, "followup", script))}: '
            f"{esc(convert_script(root, script))})</span>"
        )
    head += (
        f'<div class="coach-situation"><span class="coach-tag">{esc(tag)}</span> '
        f'<span class="coach-situation-label">{esc(label)}</span>{follow}</div>'
    )
    items = "".join(
        render_advice(h, i, lang, script, summary=turn.summaries.get(h.chunk.id, ""))
        for i, h in enumerate(turn.shown, 1)
    )
    return f'<div class="coach-card">{head}<ol class="coach-list">{items}</ol></div>'


def render_user(text: str) -> str:
    return f'<div class="coach-q">{esc(text)}</div>'


def render_why(answer: Answer | None, lang: str, script: str = "original") -> str:
    """Dense, keyword and fused scores and the matched terms of each passage shown (none out of the domain)."""
    if answer is None or answer.out_of_domain or not answer.results:
        return f'<p class="coach-muted">{esc(ui_text(lang, "no_rows", script))}</p>'
    u = lambda k: esc(ui_text(lang, k, script))  # noqa: E731
    rows = []
    for i, h in enumerate(answer.results, 1):
        rank = lambda r: f" (#{r})" if r else " (—)"  # noqa: E731
        rows.append(
            f"<tr><td>{i}. <code>{esc(h.chunk.id)}</code><br><small>{esc(convert_script(h.highlight[:60], script))}"
            f"</small></td><td>{h.score:.4f}</td><td>{h.dense_score:.3f}{rank(h.dense_rank)}</td>"
            f"<td>{h.keyword_score:.2f}{rank(h.keyword_rank)}</td>"
            f"<td>{esc(' · '.join(f'{k} {v:.2f}' for k, v in h.contributions.items())) or '—'}</td>"
            f"<td>{esc(' · '.join(h.matched_terms)) or '—'}</td></tr>"
        )
    return (
        f'<div class="coach-why"><p class="coach-muted">{u("why_hint")}</p><div class="coach-scroll"><table>'
        f"<thead><tr><th>{u('col_passage')}</th><th>{u('col_fused')}</th><th>{u('col_dense')}</th>"
        f"<th>{u('col_kw')}</th><th>{u('col_rankers')}</th><th>{u('col_terms')}</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"</div></div>"
    )


def render_essay(
    record, lang: str, script: str, span: tuple[int, int] | None = None, passage: tuple[int, int] | None = None
) -> str:
    """The full cleaned essay with the key sentence (and its passage) highlighted, and its metadata."""
    if record is None:
        return f'<p class="coach-muted">{esc(ui_text(lang, "reader_empty", script))}</p>'
    m, text = record.meta, record.text
    labels = ui_text(lang, "meta", script)
    meta_rows = "".join(
        f"<tr><th>{esc(labels[k])}</th><td>{esc(convert_script(str(v), script))}</td></tr>"
        for k, v in (
            ("author", _meta_field(m, "author", lang)),
            ("organisation", _meta_field(m, "organisation", lang)),
            ("industry", m.industry),
            ("role", m.role),
            ("years", years_text(m, lang, "original")),
            ("script", m.script),
            ("source", m.source),
            ("repairs", ", ".join(record.repairs)),
        )
        if v
    )
    cuts = sorted({0, len(text), *[x for s in (span, passage) if s for x in s if 0 <= x <= len(text)]})
    body = []
    for a, b in zip(cuts, cuts[1:]):
        piece = esc_lines(convert_script(text[a:b], script))
        if span and span[0] <= a and b <= span[1]:
            piece = f'<mark class="coach-mark" id="coach-reader-mark">{piece}</mark>'
        elif passage and passage[0] <= a and b <= passage[1]:
            piece = f'<span class="coach-passage-mark">{piece}</span>'
        body.append(piece)
    return (
        f'<article class="coach-essay"><h2>{esc(convert_script(m.title, script))}</h2>'
        f'<table class="coach-meta">{meta_rows}</table><div class="coach-essay-text">{"".join(body)}</div>'
        f"</article>"
    )


def render_present(turn: Turn | None, idx: int, lang: str, script: str) -> str:
    """Presentation mode: one piece of advice in large type, with the question and situation above it."""
    if turn is None or not turn.shown:
        return f'<div class="coach-present"><p>{esc(ui_text(lang, "present_empty", script))}</p></div>'
    hits = turn.shown
    idx = idx % len(hits)
    label = theme_label(turn.theme, turn.section, lang, script)
    inner = render_advice(
        hits[idx], idx + 1, lang, script, summary=turn.summaries.get(hits[idx].chunk.id, ""), open_passage=True
    )
    return (
        f'<div class="coach-present" data-card="{idx + 1}"><div class="coach-present-q">{esc(turn.message)}</div>'
        f'<div class="coach-situation"><span class="coach-tag">{esc(ui_text(lang, "situation", script))}</span> '
        f'{esc(label)} <span class="coach-muted coach-present-count">({idx + 1}/{len(hits)})</span></div>'
        f'<ol class="coach-list">{inner}</ol>'
        f'<p class="coach-muted coach-present-keys">{esc(ui_text(lang, "present_keys", script))}</p></div>'
    )


def render_gallery(theme: Theme, turn: Turn, lang: str, script: str) -> str:
    """The trainer's scenario: the situation, the veterans' advice side by side, a discussion prompt."""
    prompt = theme.prompt(lang)
    prompt = convert_script(prompt, script) if lang == "zh" else prompt
    if not turn.shown:
        cols = render_card(turn, lang, script)
    else:
        cols = "".join(
            f'<div class="coach-card coach-col"><ol class="coach-list">'
            f"{render_advice(h, i, lang, script, summary=turn.summaries.get(h.chunk.id, ''))}</ol></div>"
            for i, h in enumerate(turn.shown, 1)
        )
    return (
        f'<div class="coach-gallery"><div class="coach-situation"><span class="coach-tag">'
        f"{esc(ui_text(lang, 'situation', script))}</span> {esc(theme_label(theme, '', lang, script))}</div>"
        f'<div class="coach-present-q">{esc(turn.message)}</div><div class="coach-cols">{cols}</div>'
        f'<div class="coach-discuss"><span class="coach-tag">{esc(ui_text(lang, "discuss", script))}</span> '
        f"{esc(prompt)}</div></div>"
    )


def answer_markdown(turn: Turn, lang: str, script: str) -> str:
    """A plain-text export of one answer (Markdown, every line from the data, nothing executable)."""
    lines = [f"# {turn.message}", ""]
    if turn.small_talk:
        lines.append(convert_script(ui_text(lang, "small_talk", script)[turn.small_talk], script))
    elif not turn.shown:
        lines.append(ui_text(lang, "ood_title", script))
    else:
        lines += [
            f"**{ui_text(lang, 'situation', script)}:** {theme_label(turn.theme, turn.section, lang, script)}",
            "",
        ]
        for i, h in enumerate(turn.shown, 1):
            lines += [
                f"## {i}. {convert_script(h.highlight, script)}",
                "",
                convert_script(h.chunk.text, script),
                "",
                f"{attribution_text(h.essay, lang, script)} ({h.chunk.id})",
                "",
            ]
    return "\n".join(lines)


def share_link(turns: Sequence[tuple[str, bool]] | str, lang: str, script: str, base: str = "") -> str:
    """A link that reproduces a conversation: `turns` are (message, asked as a follow-up) pairs in order, each a
    `q` (a new situation) or `f` (a follow-up) parameter; a plain string is one question. `base` is the page's
    address (scheme, host, path), so the link is a full URL."""
    if isinstance(turns, str):
        turns = [(turns, False)]
    params = [("f" if followup else "q", message) for message, followup in turns if message]
    return f"{base.rstrip('/')}/?" + urllib.parse.urlencode([*params, ("lang", lang), ("script", script)])


def conversation_params(items: Sequence[tuple[str, str]]) -> list[tuple[str, bool]]:
    """The (message, follow-up) pairs of a shared link's query parameters (`share_link`'s inverse), in order."""
    return [(v, k == "f") for k, v in items if k in ("q", "f") and isinstance(v, str) and v.strip()]


def table_html(headers: Sequence[str], rows: Sequence[Sequence], lang: str) -> str:
    """A plain table of stored values (the trainer's feedback view), every cell escaped."""
    if not rows:
        return f'<p class="coach-muted">{esc(ui_text(lang, "no_rows"))}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="coach-scroll"><table class="coach-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
