"""What a card says, decided from text alone: shared by the web app and the command line.

- the key sentence of a passage (`choose_key_sentence`): the lesson wins over the story around it, and a quotation
  cut in two by the sentence splitter is given its missing mark back;
- distinct cards (`distinct_cards`): no card repeats another's passage or key sentence (overlapping passages of one
  essay share sentences);
- quoted speech worth lifting out (`find_quotes`): words an agent could say to a customer, or a lesson a veteran was
  told; quoted terms, slogans and interview questions are left alone;
- follow-ups ("what if they still won't calm down?") and small talk ("thanks", "谢谢");
- the situation recognised (`recognise`, `related_themes`), by the bridge's theme rules;
- the script a reader chose (`convert_script`): one traditional form, OpenCC's Taiwan standard (`s2tw`), so a
  passage never mixes 着/著 or 爲/為.

Nothing here imports gradio or the model: plain functions over strings, tested without a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from .themes import BY_ID, THEMES, Theme, score_themes

_CJK = re.compile(r"[\u3400-\u9fff]")
# One traditional form everywhere: OpenCC's Taiwan standard. s2tw also normalises text that is already
# traditional but mixes variants (看着/看著, 纔/才, 爲/為), which plain s2t leaves as it found them.
TRADITIONAL_CONFIG = "s2tw"
SIMPLIFIED_CONFIG = "t2s"


@lru_cache(maxsize=None)
def _opencc(config: str):
    from opencc import OpenCC

    return OpenCC(config)


@lru_cache(maxsize=4096)  # OpenCC is pure Python (~1 ms per sentence); passages and sentences recur on every ask
def convert_script(text: str, script: str) -> str:
    """`text` in simplified ("hans") or traditional ("hant", Taiwan standard) characters; "original" leaves it."""
    if not text or script not in ("hans", "hant") or not _CJK.search(text):
        return text
    return _opencc(SIMPLIFIED_CONFIG if script == "hans" else TRADITIONAL_CONFIG).convert(text)


def detect_lang(text: str) -> str:
    """The eval-file language of a question: "en", "zh" (simplified) or "zh-Hant"."""
    if not _CJK.search(text or ""):
        return "en"
    return "zh" if convert_script(text, "hans") == text else "zh-Hant"


# ---------------------------------------------------------------------------------------------- follow-ups

_FOLLOWUP_EN = re.compile(
    r"^(and |but |so |then |ok(ay)?,? |also )?(what if|and if|but if|what about|how about|if (they|he|she|it)|"
    r"they |he |she |it |them |still|again|same|what else|anything else|and then|after that)",
    re.I,
)
_FOLLOWUP_ZH = (
    "那如果",
    "如果还",
    "要是还",
    "那要是",
    "那",
    "还是",
    "要是",
    "可是",
    "但是",
    "但如果",
    "如果他",
    "如果她",
    "如果对方",
    "如果客户还",
    "他还",
    "她还",
    "他们还",
    "对方还",
    "客户还",
    "还不",
    "仍然",
    "依然",
    "然后呢",
    "之后呢",
    "接下来",
    "再",
)
_PRONOUNS_EN = re.compile(r"\b(they|them|he|him|she|her|it|that)\b", re.I)
FOLLOWUP_MAX_CHARS = 80  # longer messages describe a new situation


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


# ---------------------------------------------------------------------------------------------- small talk

# Whole messages only (after trimming punctuation and case): "thanks for the help" is small talk, "thanks, but the
# customer still shouts" is not, because it has more to say than the greeting.
_SMALL_TALK = {
    "thanks": (
        "thanks",
        "thank you",
        "thank you very much",
        "thanks a lot",
        "many thanks",
        "thx",
        "ty",
        "cheers",
        "thanks for the help",
        "thank you for the help",
        "谢谢",
        "谢谢你",
        "谢谢您",
        "多谢",
        "感谢",
        "非常感谢",
        "谢啦",
        "谢了",
        "好的谢谢",
        "好的,谢谢",
        "收到谢谢",
        "thanks!",
    ),
    "hello": (
        "hi",
        "hello",
        "hey",
        "hi there",
        "hello there",
        "good morning",
        "good afternoon",
        "good evening",
        "你好",
        "您好",
        "嗨",
        "哈喽",
        "早上好",
        "下午好",
        "晚上好",
        "在吗",
        "在吗?",
    ),
    "bye": ("bye", "goodbye", "see you", "再见", "拜拜", "回头见"),
    "test": ("test", "testing", "test test", "测试", "测试一下", "试试", "ping"),
    "help": (
        "help",
        "help me",
        "what can you do",
        "what do you do",
        "how does this work",
        "你能做什么",
        "你会什么",
        "怎么用",
        "帮助",
        "你是谁",
        "who are you",
    ),
    "ok": (
        "ok",
        "okay",
        "ok thanks",
        "okay thanks",
        "great",
        "cool",
        "nice",
        "got it",
        "好的",
        "好",
        "明白了",
        "知道了",
        "嗯",
        "行",
        "好吧",
        "懂了",
    ),
}
# The short replies (the web app and `coach ask`), English and simplified Chinese.
SMALL_TALK_REPLIES = {
    "en": {
        "thanks": "You're welcome. Describe another situation whenever you need advice.",
        "hello": "Hello! Describe a situation from your calls or chats, and Coach finds what veterans advise.",
        "bye": "Goodbye, and good luck on your next call.",
        "test": 'Coach is working. Describe a situation, e.g. "how do I handle an angry caller".',
        "help": "Describe a situation from your calls or chats, in English or Chinese: Coach answers with advice "
        "veterans of Chinese contact centres wrote down, who said it, and the passage it comes from.",
        "ok": "Good. Ask about another situation whenever you like.",
    },
    "zh": {
        "thanks": "不客气。需要建议时,随时描述你遇到的情况。",
        "hello": "你好!描述你在电话或在线服务中遇到的情况,Coach 会找出资深客服的建议。",
        "bye": "再见,祝你下一通电话顺利。",
        "test": "Coach 运行正常。请描述一个情况,例如“客户在电话里骂我怎么办”。",
        "help": "用中文或英文描述你在电话或在线服务中遇到的情况:Coach 会给出资深客服写下的建议、作者和原文段落。",
        "ok": "好的。有别的情况随时问。",
    },
}
_SMALL_TALK_INDEX = {phrase: kind for kind, phrases in _SMALL_TALK.items() for phrase in phrases}
_TRIM = re.compile(r"^[\s\W_]+|[\s\W_]+$")


def small_talk(text: str) -> str | None:
    """The kind of small talk ("thanks", "hello", "bye", "test", "help", "ok") `text` is, or None for a question."""
    t = _TRIM.sub("", convert_script((text or "").strip(), "hans").lower())
    t = re.sub(r"\s+", " ", t)
    return _SMALL_TALK_INDEX.get(t) if t else None


# ---------------------------------------------------------------------------------------------- quoted speech


@dataclass(frozen=True)
class Quote:
    kind: str  # "say" (words an agent can say to a customer) or "remember" (a lesson a veteran was told)
    text: str  # without the quotation marks
    start: int  # offset of the opening mark in the passage


_QUOTE = re.compile(r"“([^“”]{6,90})”|「([^「」]{6,90})」|『([^『』]{6,90})』|\"([^\"\n]{6,90})\"")
# Right before the quote: someone told the veteran (a lesson to keep) ...
_TOLD = (
    "告诉我",
    "对我说",
    "跟我说",
    "和我说",
    "给我说",
    "给我讲",
    "教导",
    "教我",
    "叮嘱",
    "提醒我",
    "说过",
    "讲过",
    "常说",
    "常讲",
    "名言",
    "一句话",
    "两句话",
    "几句话",
    "那句话",
    "告诫",
    "told me",
    "said to me",
    "reminded me",
    "taught me",
    "always said",
    "used to say",
    "advice was",
)
# ... or the agent speaks to the customer (words to say).
_SAY_ZH = (
    "对客户说",
    "跟客户说",
    "向客户说",
    "和客户说",
    "告诉客户",
    "安抚客户",
    "回复客户",
    "回答客户",
    "对他说",
    "对她说",
    "跟他说",
    "跟她说",
    "对客户讲",
    "我会说",
    "我就说",
    "我会讲",
    "可以说",
    "应该说",
    "要说",
)
_SAY_EN = re.compile(
    r"\b(i say|i said|i tell|i told (him|her|them|the (customer|caller))|say to|tell (him|her|them|"
    r"the (customer|caller))|try saying|you can say|you could say|i would say|then say|say)\W*$",
    re.I,
)
# Words of a customer, an interviewer or the veteran asking themselves: never lifted out as a line to say or keep.
_NOT_ADVICE = ("客户说", "客户问", "客户讲", "记者", "提问", "采访", "自问", "问自己", "质疑自己", "问我", "asked me")
_ADDRESS = ("您", "请您", "您好")


def _quote_context(passage: str, start: int, span: int = 16) -> str:
    """The text just before a quote (simplified, lower case), without an earlier quote's own words."""
    before = passage[max(0, start - span) : start]
    cut = max(before.rfind("”"), before.rfind("」"), before.rfind("』"))
    if 0 <= cut < len(before) - 1:  # text after the earlier quote is the context; right after it: see below
        before = before[cut + 1 :]
    return convert_script(before, "hans").lower()


def find_quotes(passage: str, limit: int = 2) -> list[Quote]:
    """Quoted speech in a passage that is advice: words to say to a customer, or a lesson the veteran was told.

    A quote counts only when it reads like a sentence (6-90 characters, with a clause mark or at least 10
    characters) and the words right before it say who speaks: told me / 对我说 / 常说 (remember), or I say /
    对客户说, or the quote addresses the customer as 您 (say). A quote following a remembered one directly
    ("他给我说的两句话:“…”“…”") is remembered too. Questions are lifted only when they address a customer (您),
    so interview questions and a veteran's questions to themselves stay in the passage.
    """
    out: list[Quote] = []
    previous_end, previous_kind = -10, ""
    for m in _QUOTE.finditer(passage or ""):
        text = next(g for g in m.groups() if g is not None).strip()
        chained = m.start() - previous_end <= 1 and previous_kind == "remember"
        previous_end = m.end()
        previous_kind = ""
        if len(text) < 10 and not re.search(r"[,,。!?!?、;;]", text):
            continue
        if not _CJK.search(text) and len(text.split()) < 4:
            continue
        before = _quote_context(passage, m.start())
        plain = convert_script(text, "hans")
        question = plain.rstrip("。.!! ").endswith(("?", "?", "吗", "呢"))  # noqa: B005 - a set of characters
        if any(k in before for k in _SAY_ZH) or _SAY_EN.search(before):
            kind = "say"  # the agent speaking to the customer ("安抚客户说:" holds 客户说 too)
        elif any(k in before for k in _NOT_ADVICE):
            continue
        elif any(k in before for k in _TOLD) or chained:
            kind = "remember"
        elif plain.startswith(_ADDRESS) or "您" in plain:
            kind = "say"
        else:
            continue
        if question and "您" not in plain:
            continue
        previous_kind = kind
        out.append(Quote(kind, text, m.start()))
        if len(out) >= limit:
            break
    return out


# ---------------------------------------------------------------------------------------------- key sentence

# A sentence that tells the lesson: what to do, what matters, what the veteran came to understand. Cue phrases, read
# in the simplified form; single characters such as 要 or 不能 are too common in narration to count.
_LESSON = (
    "应该",
    "应当",
    "一定要",
    "必须",
    "不要",
    "别把",
    "千万",
    "关键",
    "重要的是",
    "学会",
    "懂得",
    "记住",
    "才能",
    "才可以",
    "才会",
    "就能",
    "只有",
    "原则",
    "秘诀",
    "尽量",
    "务必",
    "建议",
    "如果你",
    "你要",
    "我们要",
    "要有",
    "要保持",
    "要遵守",
    "要学会",
    "要多",
    "不妨",
    "试着",
    "才是",
    "本质",
    "我认为",
    "我觉得",
    "我相信",
    "我坚信",
    "才发现",
    "才明白",
    "意味着",
    "就是要",
    "所以",
    "必经之路",
    "should",
    "must",
    "never",
    "always",
    "the key",
    "remember",
    "learn",
)
# A sentence that tells the story: when, who came to see me, what happened next; or a question someone asked.
_STORY = (
    "这时",
    "那时",
    "当时",
    "那天",
    "有一天",
    "有一次",
    "记得",
    "后来",
    "那年",
    "当年",
    "刚开始",
    "刚入职",
    "刚做",
    "最初",
    "那会儿",
    "找我",
    "谈心",
    "印象最深",
    "曾经",
    "曾因",
    "年前",
    "那一刻",
    "于是",
    "接着",
    "突然",
    "毕业",
    "入职",
    "采访",
    "记者",
    "问到",
    "提问",
    "经历过",
    "我以为",
    "回想",
    "我接到",
    "打过去",
    "朋友",
    "one day",
    "once",
    "back then",
    "at the time",
    "i remember",
    "years ago",
)
_DIGITS = re.compile(r"\d{4}年|\d+月|[一二三四五六七八九十]+年前")
# Cosine points. A passage's sentences sit within ~0.05 of each other (e5), so these move close calls, not clear
# winners; set on one labelled sample of answers and measured on another (eval/card_labels.md).
LESSON_BONUS = 0.015  # a sentence stating the lesson
STORY_PENALTY = 0.015  # a narrating sentence
QUESTION_PENALTY = 0.02  # a question (an interviewer's, the veteran's to themselves) is not the advice
FRAGMENT_PENALTY = 0.02  # a sentence inside a quotation the splitter cut in two, or a lead-in ending in ":"
SHORT_PENALTY = 0.03  # a fragment ("嗯。", "是的。") is never the advice
SHORT_CHARS = 8


@dataclass(frozen=True)
class KeySentence:
    index: int  # which of the passage's sentences
    text: str  # its text, with a quotation mark it lost to the splitter given back


def _cues(text: str, cues: Sequence[str]) -> int:
    t = convert_script(text, "hans").lower()
    return sum(1 for c in cues if c in t)


def sentence_kind(text: str) -> str:
    """ "lesson", "story" or "plain": whether a sentence states advice or narrates (cue words; used for the key
    sentence and by the labelled sample in eval/)."""
    lesson, story = _cues(text, _LESSON), _cues(text, _STORY) + len(_DIGITS.findall(text))
    if lesson > story:
        return "lesson"
    if story > lesson:
        return "story"
    return "plain"


def _adjustment(text: str) -> float:
    """What a sentence's form adds to its similarity when choosing the key sentence (see the constants above)."""
    kind = sentence_kind(text)
    value = LESSON_BONUS if kind == "lesson" else -STORY_PENALTY if kind == "story" else 0.0
    bare = text.strip().rstrip("”」』\"' ")
    if bare.endswith(("?", "?")):
        value -= QUESTION_PENALTY
    if repair_quotes(text) != text or bare.endswith((":", ":")):
        value -= FRAGMENT_PENALTY
    if len(_CJK.findall(text)) + len(text.split()) < SHORT_CHARS:
        value -= SHORT_PENALTY
    return value


def repair_quotes(text: str) -> str:
    """A sentence whose quotation marks do not pair up, because the splitter cut inside a quotation, made whole:
    a missing opening mark goes in front, a missing closing mark at the end."""
    for open_, close in (("“", "”"), ("「", "」"), ("『", "』")):
        depth, missing_open = 0, 0
        for ch in text:
            if ch == open_:
                depth += 1
            elif ch == close:
                if depth:
                    depth -= 1
                else:
                    missing_open += 1
        text = open_ * missing_open + text + close * depth
    return text


def choose_key_sentence(sentences: Sequence[str], scores: Sequence[float]) -> KeySentence:
    """The passage's key sentence: the one closest to the question, where a sentence stating the lesson beats a
    narrative one of nearly the same similarity (the lesson wins over the story), and fragments lose.

    `sentences` are the passage's sentences in order, `scores` their similarity to the question (cosine).
    """
    if not sentences:
        raise ValueError("choose_key_sentence needs at least one sentence")
    best, best_value = 0, float("-inf")
    for i, (text, score) in enumerate(zip(sentences, scores)):
        value = float(score) + _adjustment(text)
        if value > best_value:
            best, best_value = i, value
    return KeySentence(best, repair_quotes(sentences[best].strip()))


# ---------------------------------------------------------------------------------------------- distinct cards


@dataclass(frozen=True)
class CardText:
    """What a reader sees of one card: which passage (essay and offsets), its text and its key sentence."""

    essay: str
    start: int
    end: int
    text: str
    key: str


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", convert_script(text or "", "hans").lower())


def repeats(card: CardText, shown: CardText) -> bool:
    """Whether `card` repeats `shown`: the same passage text or key sentence, overlapping passages of one essay
    (they share sentences), or a key sentence the shown passage already holds."""
    key, text = _norm(card.key), _norm(card.text)
    if text == _norm(shown.text) or (key and key == _norm(shown.key)):
        return True
    if card.essay == shown.essay and card.start < shown.end and shown.start < card.end:
        return True
    return bool(key) and key in _norm(shown.text)


def distinct_cards(cards: Sequence[CardText], top_k: int) -> list[int]:
    """Indices of the first `top_k` cards (in the order given, best first) that repeat no card kept before them."""
    kept: list[int] = []
    for i, card in enumerate(cards):
        if len(kept) >= top_k:
            break
        if not any(repeats(card, cards[j]) for j in kept):
            kept.append(i)
    return kept


# ---------------------------------------------------------------------------------------------- situations


def recognise(query: str, passages: Sequence[str]) -> tuple[Theme | None, str]:
    """The situation Coach recognised: a theme matched in the question, else in the top passage (`passages`: the
    shown passages' texts, best first). Returns (theme, "") or (None, "") when nothing matched."""
    scored = score_themes(convert_script(query, "hans"))
    if not scored and passages:
        scored = score_themes(convert_script(passages[0], "hans"))
    return (scored[0][0], "") if scored else (None, "")


def related_themes(theme: Theme | None, passages: Sequence[str], n: int = 3) -> list[Theme]:
    """Situations to suggest next: the theme's own neighbours, then themes the shown passages touch."""
    out: list[Theme] = []
    if theme:
        out.extend(BY_ID[r] for r in theme.related if r in BY_ID)
    text = convert_script(" ".join(passages), "hans")
    for t, _n in score_themes(text):
        if t not in out and t is not theme:
            out.append(t)
    for t in THEMES:
        if t not in out and t is not theme:
            out.append(t)
    return out[:n]
