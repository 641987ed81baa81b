"""Where the memory goes, and what two cheap changes save (run in a fresh process by bench/run.py).

Prints one JSON line: RSS after each import/load step, the high-water mark, and for two candidate changes
(return freed heap to the OS after loading; keep the 250k-token embedding table in fp16 and widen only the rows
looked up) the RSS they reach and whether retrieval stays the same (top-3 passages, query-vector cosine).
"""

from __future__ import annotations

import ctypes
import gc
import json
import sys
import unicodedata
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
    import torch
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
    base_top = [[h.chunk.id for h in coach.ask(q).results] for q in qs]
    base_vecs = embedder.encode_queries(qs)
    steps.append((f"load index + answer {len(qs)} questions", rss()))
    out = {"steps": steps, "hwm": hwm(), "rss_file": _status("RssFile"), "rss_anon": _status("RssAnon")}
    tok = embedder._model.tokenizer
    before = rss()
    from transformers import AutoTokenizer
    extra = AutoTokenizer.from_pretrained(str(embedder.path)) if embedder.path else None
    out["tokenizer_bytes"] = rss() - before  # one more copy of the 250k-piece tokenizer: what one costs
    del extra, tok

    trim()
    out["after_malloc_trim"] = rss()

    bert = embedder._model[0].auto_model
    emb = bert.embeddings.word_embeddings
    out["embedding_table_bytes"] = emb.weight.numel() * emb.weight.element_size()
    out["params_bytes"] = sum(p.numel() * p.element_size() for p in bert.parameters())

    class HalfEmbedding(torch.nn.Module):
        """fp16 storage, fp32 rows out: the lookup is the only thing that touches this table."""

        def __init__(self, weight: torch.Tensor, padding_idx):
            super().__init__()
            self.weight16 = torch.nn.Parameter(weight.detach().to(torch.float16), requires_grad=False)
            self.padding_idx = padding_idx
            self.embedding_dim = weight.shape[1]

        @property
        def weight(self):  # for code that asks for the dtype/device
            return self.weight16

        def forward(self, ids):
            return torch.nn.functional.embedding(ids, self.weight16).to(torch.float32)

    bert.embeddings.word_embeddings = HalfEmbedding(emb.weight, emb.padding_idx)
    del emb
    trim()
    out["after_fp16_table"] = rss()
    new_vecs = embedder.encode_queries(qs)
    out["fp16_min_cosine"] = float((new_vecs * base_vecs).sum(axis=1).min())
    coach._theme_vectors = {}
    new_top = [[h.chunk.id for h in coach.ask(q).results] for q in qs]
    out["fp16_same_top3"] = sum(a == b for a, b in zip(base_top, new_top)) / len(qs)

    # Vocabulary pruning potential: pieces made only of characters from the scripts Coach serves.
    vocab = embedder._model.tokenizer.get_vocab()

    def served(piece: str) -> bool:
        for ch in piece.replace("\u2581", ""):
            if ch.isascii() or "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" \
                    or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef":
                continue
            cat = unicodedata.category(ch)
            if cat[0] in "PZS":
                continue
            return False
        return True

    kept = sum(served(p) for p in vocab)
    out["vocab_size"] = len(vocab)
    out["vocab_served"] = kept
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
