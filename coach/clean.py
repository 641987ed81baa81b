"""Small, named repairs that turn a damaged essay into clean text.

Every repair is a function `text -> (text, count)` registered in `REPAIRS` (in the order they run), so the
corpus report can say which repairs touched an essay and how often. Damage that no generic repair can
undo is fixed by an erratum from `corpus/errata.toml` (exact damaged span -> corrected text), applied to
the raw text before anything else.

The cleaned text keeps the essay's own script (for display); `to_simplified` / `normalise_for_match`
derive the forms used for matching.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable

# --------------------------------------------------------------------------------------------------
# Script conversion and the matching form

_T2S = None


def _converter():
    global _T2S
    if _T2S is None:
        from opencc import OpenCC  # opencc-python-reimplemented

        _T2S = OpenCC("t2s")
    return _T2S


def to_simplified(text: str) -> str:
    """Simplified-Chinese form of `text`, used for matching (keyword search, evaluation)."""
    return _converter().convert(text) if text else text


_PUNCT_OR_SPACE = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise_for_match(text: str) -> str:
    """Simplified, lower-cased, with all punctuation and whitespace removed."""
    text = unicodedata.normalize("NFKC", text)
    return _PUNCT_OR_SPACE.sub("", to_simplified(text).lower())


# --------------------------------------------------------------------------------------------------
# Errata: editorial corrections recorded in corpus/errata.toml


@dataclass(frozen=True)
class Erratum:
    essay: str  # essay id
    damaged: str  # exact span of the raw (decoded, unrepaired) text; must occur exactly once
    corrected: str
    reason: str


class ErratumMismatch(ValueError):
    """An erratum's damaged span does not occur exactly once in its essay's raw text."""


def apply_errata(raw: str, errata: Iterable[Erratum]) -> tuple[str, int]:
    """Apply each erratum to `raw`; each damaged span must occur exactly once."""
    count = 0
    for e in errata:
        found = raw.count(e.damaged)
        if found != 1:
            raise ErratumMismatch(f"erratum for {e.essay!r} matches {found} times (want 1): {e.damaged!r}")
        raw = raw.replace(e.damaged, e.corrected)
        count += 1
    return raw, count


# --------------------------------------------------------------------------------------------------
# Repair: GBK byte-shift runs ("。”" shown as "?!" + mojibake), re-decoded generically
#
# The damaged text was GB18030 bytes whose first byte got lost; the rest were decoded one byte out of
# step, pairing each trail byte with the next lead byte, until an ASCII trail byte put the decoder back
# in step.  Full-width "！" / "，" in the wreck were later folded to ASCII.  So "記者?!?/p>" is
# [A1] A3A1 [B1]"<"/p> = "。”</p>", and "?!边@" is [A1] A3A1 B1DF 40 = "。”這".  We restore the lost
# bytes by trying every candidate and keeping the most plausible decoding (punctuation, then the
# commonest characters by jieba's frequency list).

_SHIFT_RUN = re.compile(r"\?([!,][^\x00-\x7f?]*)([\x21-\x7e])")
_FOLDED = {"!": "！", ",": "，"}
_TO_HALF = str.maketrans({"，": ",", "！": "!", "？": "?", "：": ":", "；": ";"})
_LIKELY_PUNCT = set("。，、“”：；！？…")
_SENTENCE_END = set("。！？!?")


@lru_cache(maxsize=1)
def _char_freq() -> dict[str, int]:
    import jieba
    import os

    freq: dict[str, int] = {}
    with open(os.path.join(os.path.dirname(jieba.__file__), "dict.txt"), encoding="utf-8") as fh:
        for line in fh:
            word, _, rest = line.partition(" ")
            if len(word) == 1:
                freq[word] = int(rest.split(" ", 1)[0])
    return freq


def _char_score(ch: str, prev: str = "") -> float:
    if ch in _LIKELY_PUNCT:
        if prev in _SENTENCE_END:  # after 。 only a closing quote makes sense
            return 25.0 if ch in "”’" else -50.0
        return 20.0
    cat = unicodedata.category(ch)
    if cat in ("Co", "Cn", "Cc") or ord(ch) < 0x80:
        return -100.0
    return math.log10(_char_freq().get(to_simplified(ch), 0) + 1)


def _decode_pair(pair: bytes) -> str | None:
    try:
        ch = pair.decode("gb18030")
    except UnicodeDecodeError:
        return None
    return ch if len(ch) == 1 and _char_score(ch) > -100 else None


def _best_pair(known: bytes, lost_first: bool, prev: str = "") -> tuple[str, float] | None:
    """Best character for a byte pair with one byte lost (before or after `known`)."""
    best = None
    for b in range(0x81, 0xFF):
        pair = bytes([b]) + known if lost_first else known + bytes([b])
        ch = _decode_pair(pair)
        if ch is not None:
            score = _char_score(ch, prev)
            if best is None or score > best[1]:
                best = (ch, score)
    return best


def _reshift(run: str, trail: str) -> str | None:
    """Re-decode one shifted run (without its leading '?'); `trail` is the ASCII char that ended it."""
    data = b"".join(_FOLDED.get(c, c).encode("gb18030") for c in run)
    out = []
    first = _best_pair(data[:1], lost_first=True)  # the lead byte lost before the run
    if first is None:
        return None
    out.append(first[0])
    rest = data[1:] + (trail.encode("ascii") if trail != "?" else b"")
    if trail == "?":  # ends on a dangling byte whose partner was lost
        body, dangling = rest[:-1], rest[-1:]
    else:
        body, dangling = rest, b""
    if len(body) % 2:
        return None
    for i in range(0, len(body), 2):
        ch = _decode_pair(body[i : i + 2])
        if ch is None:
            return None
        out.append(ch)
    if dangling:
        last = _best_pair(dangling, lost_first=False, prev=out[-1])
        if last is None:
            return None
        out.append(last[0])
    return "".join(out).translate(_TO_HALF)


def _plausibility(s: str) -> float:
    """Mean character score: real text scores high, mojibake low. Used to refuse harmful 'repairs'."""
    scores = [_char_score(c) for c in s if not c.isascii()]
    return sum(scores) / len(scores) if scores else 0.0


def _prefer_closing_quote(repaired: str, before: str) -> str:
    """A re-decoded quote mark pair can be “ or ”; pick the one the paragraph needs."""
    line = before[before.rfind("\n") + 1 :]
    if repaired.endswith("“") and line.count("“") > line.count("”"):
        return repaired[:-1] + "”"
    return repaired


def repair_shifted_gbk(text: str) -> tuple[str, int]:
    """Re-decode runs where GBK bytes slipped by one ("?!边@" -> "。”這", "?,F" -> "。現")."""
    out, pos, count = [], 0, 0
    for m in _SHIFT_RUN.finditer(text):
        run, trail = m.group(1), m.group(2)
        fixed = _reshift(run, trail)
        if fixed is None or _plausibility(fixed) < _plausibility(run):
            continue
        fixed = _prefer_closing_quote(fixed, text[: m.start()])
        after = text[m.end() :]
        if trail == "?":
            # the dangling byte swallowed the next ASCII char; restore it where markup makes it certain
            if re.match(r"/?[a-zA-Z][a-zA-Z0-9]*>", after):
                fixed += "<"
            elif re.match(r"#?[a-zA-Z0-9]+;", after):
                fixed += "&"
        out.append(text[pos : m.start()])
        out.append(fixed)
        pos = m.end()
        count += 1
    out.append(text[pos:])
    return "".join(out), count


# --------------------------------------------------------------------------------------------------
# Repair: markup and entities

_DROP_BLOCKS = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>|<!--.*?-->", re.DOTALL)
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);")


def strip_markup(text: str) -> tuple[str, int]:
    """Remove HTML tags (script/style with their content) and decode entities such as `&nbsp;`."""
    count = 0
    text, n = _DROP_BLOCKS.subn("", text)
    count += n
    text, n = _TAG.subn("", text)
    count += n
    count += len(_ENTITY.findall(text))
    text = html.unescape(text)
    return text, count


# --------------------------------------------------------------------------------------------------
# Repair: pinyin annotations after characters, e.g. 系統(tǒng), 業(yè)務, 建行生活A(yù)PP

_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ"
_PINYIN = re.compile(rf"\((?=[a-zü]*[{_TONED}])[a-zü{_TONED}]{{1,7}}\)")


def remove_pinyin(text: str) -> tuple[str, int]:
    """Drop parenthesised pinyin syllables; real parentheses such as (后来的主管) or (1) stay."""
    return _PINYIN.subn("", text)


# --------------------------------------------------------------------------------------------------
# Repair: boilerplate lines (site navigation, bylines, column blurbs, ads, sign-offs)
# Patterns are written in simplified Chinese and matched against the simplified form of each line;
# only short lines (<= 60 characters) are ever dropped, so body text cannot be lost to a stray match.

BOILERPLATE: dict[str, tuple[str, ...]] = {
    "navigation": (r"^博客首页\s", r"^\d{4}-\d{1,2}-\d{1,2}(\s|$)"),
    "bylines": (r"^作者\s*[|｜]", r"^受访者\s*[|｜]", r"人物专访\s*第\s*\d+\s*期"),
    "column_intro": (r"^嗨,这里是【.*】", r"^这是我们在《.*》的第\s*\d+\s*次见面$"),
    "column_blurb": (
        r"^《客服老炮儿说》$",
        r"^——老炮儿讲出新故事$",
        r"^客服知道新推出的.*栏目",
        r"^我们心中的“老炮儿”",
        r"^我们眼中的[“”]新[“”]故事",
        r"^客服知道,你身边的客服轻学院$",
    ),
    "sign_off": (r"^end$", r"^点个[“\"]在看[”\"]$"),
    "ads_footer": (r"^【需投稿", r"免费试用", r"ICP备\s*\d+号"),
}
_BOILERPLATE = [re.compile(p, re.IGNORECASE) for group in BOILERPLATE.values() for p in group]


def is_boilerplate(line: str) -> bool:
    line = line.strip().replace("\xa0", " ")
    if not line or len(line) > 60:
        return False
    simple = to_simplified(line)
    return any(p.search(simple) for p in _BOILERPLATE)


def drop_boilerplate(text: str) -> tuple[str, int]:
    """Drop whole lines that are site chrome, bylines, ads or sign-offs, not essay."""
    kept, count = [], 0
    for line in text.split("\n"):
        if is_boilerplate(line):
            count += 1
        else:
            kept.append(line)
    return "\n".join(kept), count


# --------------------------------------------------------------------------------------------------
# Repair: layout — trim lines, drop blank ones; one paragraph per line

_SPACES = re.compile(r"[ \t\xa0\u3000\u200b\ufeff]+")


def _has_words(line: str) -> bool:
    return any(unicodedata.category(c)[0] in "LN" for c in line)


def tidy_lines(text: str) -> tuple[str, int]:
    """Strip each line, squeeze runs of spaces, drop lines that are empty or debris (no letter, no digit)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    kept = [line for line in lines if _has_words(line)]
    return "\n".join(kept), len(lines) - len(kept)


Repair = Callable[[str], "tuple[str, int]"]

# The generic repairs, in the order they run (errata come first, the title line is dropped last).
REPAIRS: dict[str, Repair] = {
    "shifted_gbk": repair_shifted_gbk,
    "markup": strip_markup,
    "pinyin": remove_pinyin,
    "boilerplate": drop_boilerplate,
    "layout": tidy_lines,
}


# --------------------------------------------------------------------------------------------------
# The whole stage


@dataclass
class Cleaned:
    text: str
    repairs: Counter = field(default_factory=Counter)  # repair name -> times applied

    def summary(self) -> tuple[str, ...]:
        """("errata=4", "markup=37", ...) for repairs that changed something, in registry order."""
        order = ["errata", *REPAIRS, "title_line"]
        return tuple(f"{name}={self.repairs[name]}" for name in order if self.repairs.get(name))


def drop_title_line(text: str, title: str) -> tuple[str, int]:
    """The essay's title is metadata: drop it when it is the first line of the body."""
    first, _, rest = text.partition("\n")
    if title and normalise_for_match(first) == normalise_for_match(title):
        return rest, 1
    return text, 0


def clean_text(raw: str, errata: Iterable[Erratum] = (), title: str = "") -> Cleaned:
    """Errata, then every registered repair, then the title line. Raises ErratumMismatch."""
    counts: Counter = Counter()
    text, n = apply_errata(raw, errata)
    counts["errata"] = n
    for name, repair in REPAIRS.items():
        text, n = repair(text)
        counts[name] += n
    text, n = drop_title_line(text, title)
    counts["title_line"] = n
    return Cleaned(text=text, repairs=+counts)
