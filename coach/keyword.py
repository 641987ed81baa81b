"""Keyword search: BM25 (bm25s, Lucene variant) over jieba tokens of the simplified-Chinese form of each passage,
and over its Chinese character pairs (`char_bigrams`).

Words are cut by rjieba (jieba's algorithm and dictionary in Rust): it loads in a tenth of a second where jieba takes
1-2 s, which every process start would pay. `cut_for_search` gives jieba's `lcut_for_search` tokens (tested against
it on the corpus and the eval questions).

Saved as bm25s's plain files (.npy arrays, JSON vocabulary and parameters), never pickle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import bm25s
import numpy as np
import rjieba

from .clean import to_simplified


# Function words that match everywhere and say nothing about the situation.
STOPWORDS = frozenset(
    """
的 了 是 在 我 你 他 她 它 们 我们 你们 他们 这 那 这个 那个 就 也 都 和 与 及 或 而 但 又 被 把 让 给 对 从 到 向
为 为了 以 之 其 吗 呢 吧 啊 呀 哦 嗯 么 什么 怎么 怎么办 怎样 如何 为什么 一个 一些 有 没有 不 没 会 能 要 可以 还 很
自己 时 时候 如果 因为 所以 然后 但是 还是 就是 这样 那样 这些 那些 其实 一 个 上 下 中 里 等 着 过 去 来 说 做 该 应该 得
a an the and or but if of to in on at for with by from as is are was were be been being do does did doing have has
had i me my we our you your he him his she her it its they them their this that these those what which who whom how
why when where can could should would will shall may might must not no so than too very just about into over under
again then once there here all any both each few more most other some such own same only s t don now get got
""".split()
)

_TOKEN_OK = re.compile(r"[0-9a-z\u3400-\u9fff]", re.IGNORECASE)


def tokenize(text: str) -> list[str]:
    """Search tokens: simplified, lower-cased jieba words (with sub-words of long words), minus stopwords."""
    words = cut_for_search(to_simplified(text).lower())
    return [w for w in (w.strip() for w in words) if w and w not in STOPWORDS and _TOKEN_OK.search(w)]


_HAN = re.compile(r"[\u4e00-\u9fd5]")
# jieba splits a run of Latin letters and digits from the punctuation inside it ("add-on" -> add, -, on) and keeps
# a number's decimals and percent sign ("3.5%"); rjieba keeps such runs whole
_LATIN_PIECES = re.compile(r"[a-zA-Z0-9]+(?:\.\d+)?%?|.", re.S)


def cut_for_search(text: str) -> list[str]:
    """jieba's `lcut_for_search`: each word of the cut, preceded by its two- and three-character sub-words that are
    dictionary words."""
    out: list[str] = []
    for word in rjieba.cut(text):
        for w in [word] if _HAN.search(word) or len(word) <= 1 else _LATIN_PIECES.findall(word):
            if len(w) > 2:
                out += [w[i : i + 2] for i in range(len(w) - 1) if rjieba.has_word(w[i : i + 2])]
            if len(w) > 3:
                out += [w[i : i + 3] for i in range(len(w) - 2) if rjieba.has_word(w[i : i + 3])]
            out.append(w)
    return out


_HAN_RUN = re.compile(r"[\u3400-\u9fff]+")


def char_bigrams(text: str) -> list[str]:
    """Overlapping pairs of Chinese characters (simplified) within each run of Han characters. They match where
    jieba segments a phrase differently, or a paraphrase shares characters but not words (超过我 / 超过自己)."""
    return [run[i : i + 2] for run in _HAN_RUN.findall(to_simplified(text)) for i in range(len(run) - 1)]


def words_and_bigrams(text: str) -> list[str]:
    """jieba words and Chinese character pairs of a text (simplified): the situation descriptions' BM25 tokens."""
    return tokenize(text) + char_bigrams(text)


@dataclass
class KeywordIndex:
    bm25: bm25s.BM25

    @classmethod
    def build(cls, texts: list[str], tokenizer: Callable[[str], list[str]] = tokenize) -> "KeywordIndex":
        """BM25 over `tokenizer`'s tokens of each text (jieba words by default, or `char_bigrams`)."""
        bm25 = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
        bm25.index([tokenizer(t) or [""] for t in texts], show_progress=False)
        return cls(bm25)

    def scores(self, query: str) -> tuple[np.ndarray, list[str]]:
        """BM25 score of every passage for `query`, and the query terms the index knows."""
        terms = [t for t in dict.fromkeys(tokenize(query)) if t in self.bm25.vocab_dict]
        if not terms:
            return np.zeros(self.bm25.scores["num_docs"], dtype=np.float32), []
        return np.asarray(self.bm25.get_scores(terms), dtype=np.float32), terms

    def weighted_scores(self, weights: dict[str, float]) -> tuple[np.ndarray, list[str]]:
        """Sum over known tokens of weight x BM25 score of that token alone, and the tokens used.

        With every weight 1 this equals `scores` on the same tokens (BM25 is a sum over query terms).
        """
        terms = [t for t, w in weights.items() if w > 0 and t in self.bm25.vocab_dict]
        total = np.zeros(self.bm25.scores["num_docs"], dtype=np.float32)
        for t in terms:
            total += np.float32(weights[t]) * np.asarray(self.bm25.get_scores([t]), dtype=np.float32)
        return total, terms

    def save(self, folder: Path) -> None:
        self.bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> "KeywordIndex":
        return cls(bm25s.BM25.load(str(folder), load_corpus=False))
