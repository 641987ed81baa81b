"""Check the cards over the whole eval set, as `coach ask --json --top-k 3` gives them.

    python scripts/card_check.py                      # eval/queries.jsonl: repeats and out-of-domain results
    python scripts/card_check.py --baseline           # the same with the old key sentence and no de-duplication
    python scripts/card_check.py --dump answers.jsonl # also write every answer (key sentences, quotes) for labelling,
                                                      # with the baseline's answer beside it

An answer *repeats* when two of its cards share a passage (same source or text), a key sentence, or when one card's
key sentence is already in another card's passage (overlapping passages of one essay). Out-of-domain answers must
carry no results. Exit status 1 when any answer repeats or an out-of-domain answer has results.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coach import advice  # noqa: E402
from coach.config import Settings  # noqa: E402


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", advice.convert_script(text or "", "hans").lower())


def repeats(results: list[dict]) -> list[str]:
    """Why the cards of one JSON answer repeat each other (empty: they do not)."""
    why = []
    for i, a in enumerate(results):
        for j, b in enumerate(results[:i]):
            if a["source"] == b["source"] or _norm(a["text"]) == _norm(b["text"]):
                why.append(f"cards {j + 1} and {i + 1}: same passage {a['source']}")
            elif _norm(a["highlight"]) == _norm(b["highlight"]):
                why.append(f"cards {j + 1} and {i + 1}: same key sentence")
            elif _norm(a["highlight"]) in _norm(b["text"]) or _norm(b["highlight"]) in _norm(a["text"]):
                why.append(f"cards {j + 1} and {i + 1}: a key sentence already in the other's passage")
    return why


class _Baseline:
    """The behaviour before issue 18, while in use: the most similar sentence, no de-duplication."""

    def __enter__(self):
        self.saved = advice.choose_key_sentence, advice.distinct_cards

        def most_similar(sentences, scores):
            best = max(range(len(sentences)), key=lambda i: float(scores[i]))
            return advice.KeySentence(best, sentences[best])

        advice.choose_key_sentence = most_similar
        advice.distinct_cards = lambda cards, top_k: list(range(min(top_k, len(cards))))
        return self

    def __exit__(self, *exc):
        advice.choose_key_sentence, advice.distinct_cards = self.saved


def _quotes(results: list[dict]) -> list[dict | None]:
    """The line each card lifts out of its passage (not a repeat of its key sentence), as the UI shows it."""
    out = []
    for r in results:
        q = [x for x in advice.find_quotes(r["text"]) if x.text not in r["highlight"]][:1]
        out.append({"kind": q[0].kind, "text": q[0].text} if q else None)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("queries", nargs="?", type=Path, default=ROOT / "eval" / "queries.jsonl")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--baseline", action="store_true", help="old key sentence, no de-duplication (for comparison)")
    p.add_argument("--dump", type=Path, help="write every answer as JSONL (query, results, quotes) for labelling")
    args = p.parse_args(argv)
    from coach.retrieve import Coach

    rows = [json.loads(line) for line in args.queries.read_text("utf-8").splitlines() if line.strip()]
    coach = Coach(Settings(), build=True)
    counts: Counter = Counter()
    bad: list[str] = []
    dump = args.dump.open("w", encoding="utf-8") if args.dump else None
    for row in rows:
        if args.baseline:
            with _Baseline():
                answer = coach.ask(row["query"], top_k=args.top_k, diverse=True).to_json()
        else:
            answer = coach.ask(row["query"], top_k=args.top_k, diverse=True).to_json()  # `coach ask --json`
        counts["answers"] += 1
        if answer["out_of_domain"]:
            counts["out_of_domain"] += 1
            if answer["results"]:
                counts["out_of_domain_with_results"] += 1
                bad.append(f"out of domain with results: {row['query']}")
        why = repeats(answer["results"])
        if why:
            counts["repeating"] += 1
            bad.append(f"{row['query']}: {'; '.join(why)}")
        quotes = _quotes(answer["results"])
        counts["cards"] += len(quotes)
        for q in quotes:
            if q:
                counts[f"cards_{q['kind']}"] += 1
        counts["answers_with_quote"] += any(quotes)
        if dump:
            record = {
                "query": row["query"],
                "lang": row.get("lang"),
                "split": row.get("split"),
                "out_of_domain": answer["out_of_domain"],
                "results": [
                    {"source": r["source"], "highlight": r["highlight"], "quote": q}
                    for r, q in zip(answer["results"], quotes)
                ],
            }
            if not args.baseline:  # the baseline's answer beside it (the query's vectors are cached: cheap)
                with _Baseline():
                    old = coach.ask(row["query"], top_k=args.top_k, diverse=True).to_json()
                old_results = old["results"] or old.get("nearest", [])
                record["baseline"] = [{"source": r["source"], "highlight": r["highlight"]} for r in old_results]
                counts["baseline_repeating"] += bool(repeats(old_results)) and not old["out_of_domain"]
            dump.write(json.dumps(record, ensure_ascii=False) + "\n")
    if dump:
        dump.close()
    for line in bad[:40]:
        print(line)
    print(json.dumps(dict(counts), indent=2))
    print(
        f"{counts['repeating']} of {counts['answers']} answers repeat a passage or key sentence; "
        f"{counts['out_of_domain_with_results']} of {counts['out_of_domain']} out-of-domain answers carry results"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
