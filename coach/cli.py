"""The `coach` command line: build, ask, corpus, info, eval."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

from . import advice
from .config import Settings

EPILOG = """\
examples:
  coach build                                   build (or rebuild) the index
  coach ask "how do I handle an angry caller"
  coach ask "被客户辱骂时怎么保持冷静" --top-k 5
  coach ask --json --top-k 3 "angry caller" "新人紧张怎么办"
  printf 'q1\\nq2\\n' | coach ask --json -          queries from standard input, one per line
  coach corpus                                  per-essay report: title, author, characters, chunks, repairs,
                                                and the descriptions (the editors' and the learned ones)
  coach info                                    manifest, model and paths
  coach eval eval/queries.jsonl                 retrieval quality (hit@k, MRR, out-of-domain)
  coach --model intfloat/multilingual-e5-small ask "..."   use another sentence-transformers model
"""

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coach",
        description="Veteran contact-centre advice for the situation you describe.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model", help="sentence-transformers model name or path (default: the bundled multilingual-e5-small)"
    )
    p.add_argument("--corpus", type=Path, help="corpus folder (default: ./corpus or $COACH_CORPUS_DIR)")
    p.add_argument("--index", type=Path, help="index folder (default: ./index or $COACH_INDEX_DIR)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser(
        "build",
        help="build the index from the corpus",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("--if-needed", action="store_true", help="only build when the index is missing, stale or corrupt")

    a = sub.add_parser(
        "ask",
        help="advice for one or more situations",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("queries", nargs="+", metavar="QUERY", help="a situation; '-' reads more from stdin, one per line")
    a.add_argument("--top-k", type=int, default=3, help="pieces of advice per query (default 3)")
    a.add_argument("--json", action="store_true", help="print one JSON array, one object per query")
    a.add_argument("--no-build", action="store_true", help="fail instead of building a missing or stale index")
    a.add_argument("--no-diversity", action="store_true", help="allow several results from one essay")

    sub.add_parser("corpus", help="report on the corpus: essays, authors, chunks, repairs")
    sub.add_parser("info", help="index manifest, model and paths")

    e = sub.add_parser("eval", help="evaluate retrieval quality on a JSONL query file")
    e.add_argument("queries_file", type=Path, metavar="QUERIES.jsonl")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.add_argument("--top-k", type=int, default=10, help=argparse.SUPPRESS)  # metrics always use the top 10
    e.add_argument("--split", metavar="NAME", help="only the questions of this split (e.g. tune, heldout2)")
    e.add_argument("--modes", metavar="M1,M2", help="comma-separated search modes to compare (default: all)")
    e.add_argument(
        "--no-misses",
        action="store_true",
        help="leave out the per-question miss list (while tuning, so no held-out question is read)",
    )
    e.add_argument(
        "--leave-one-essay-out",
        action="store_true",
        help="per essay: rebuild and retrain without its descriptions, score the questions only it "
        "answers (beside the figures with every description)",
    )
    e.add_argument(
        "--with-essays",
        type=Path,
        metavar="DIR",
        help="evaluate on the corpus plus the essays of DIR (e.g. eval/fresh_essays: essays no "
        "description covers), built in a temporary folder",
    )
    return p


def _settings(args) -> Settings:
    return Settings().with_overrides(
        model=args.model,
        corpus_dir=args.corpus and args.corpus.resolve(),
        index_dir=args.index and args.index.resolve(),
    )


def _read_queries(raw: list[str]) -> list[str]:
    out: list[str] = []
    for q in raw:
        if q == "-":
            out.extend(line.rstrip("\r\n") for line in sys.stdin if line.strip())
        else:
            out.append(q)
    return out


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr)


def _print_answer(answer) -> None:
    print(f"\n» {answer.query}")
    if answer.truncated:
        print("  (your question was shortened)")
    if answer.out_of_domain:  # small talk ("thanks") gets a short reply, the rest the plain "not written about"
        kind = advice.small_talk(answer.query)
        print("  " + (advice.SMALL_TALK_REPLIES["en"][kind] if kind else "The veterans have not written about this."))
        return
    for n, hit in enumerate(answer.results, 1):
        m = hit.essay  # the English attribution where essays.toml gives one
        organisation = m.organisation_en or m.organisation
        who = (m.author_en or m.author) + (f", {organisation}" if organisation else "")
        print(f"\n  {n}. {hit.highlight}")
        print(textwrap.indent(textwrap.fill(hit.chunk.text, 60), "     "))
        print(f"     — {who} · 《{hit.essay.title}》" + (f" · {hit.chunk.section}" if hit.chunk.section else ""))


def cmd_build(args, settings: Settings) -> int:
    from . import pipeline
    from .embed import Embedder
    from .retrieve import Coach

    embedder = Embedder(settings.model, cache_dir=settings.model_cache_dir, vocabulary=settings.vocabulary)
    if args.if_needed:
        idx = Coach(settings, embedder=embedder, progress=_progress).index
    else:
        idx = pipeline.build(settings, embedder, _progress)
    for w in idx.warnings:
        print(f"warning: {w}", file=sys.stderr)
    from .onnx_embed import prepare

    m = idx.manifest
    # the query model's ONNX export, once, while torch is loaded anyway (the tuned model's when the build tuned one)
    prepare(settings.with_overrides(model=m.tuning["path"]) if m.tuning else settings)
    print(
        f"index ready: {m.counts['essays']} essays, {m.counts['chunks']} passages, "
        f"{m.counts['sentences']} sentences ({m.index_type}) in {idx.build_dir}"
    )
    return EXIT_OK


def cmd_ask(args, settings: Settings) -> int:
    from .retrieve import Coach, sanitize_query

    queries = _read_queries(args.queries)
    if args.top_k < 1:
        print("error: --top-k must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    # checked before anything loads: nothing to search needs no model to be refused. A blank line among real
    # questions (a batch on stdin) still gets its empty answer in place.
    if not any(sanitize_query(q)[0] for q in queries):
        print(
            'error: the question is empty; describe the situation, e.g. coach ask "how do I handle an angry caller"',
            file=sys.stderr,
        )
        return EXIT_USAGE
    coach = Coach(settings, build=not args.no_build, progress=_progress)
    for w in coach.index.warnings:  # e.g. broken metadata while the previous index is served (issue 19)
        print(f"warning: {w}", file=sys.stderr)
    answers = [coach.ask(q, top_k=args.top_k, diverse=not args.no_diversity) for q in queries]
    if args.json:
        data = [a.to_json() for a in answers]
        text = json.dumps(data, ensure_ascii=False, indent=2)
        try:  # reliability fix: a stdout that cannot encode the text gets \u escapes, still valid JSON
            text.encode(sys.stdout.encoding or "utf-8")
        except (UnicodeEncodeError, LookupError):
            text = json.dumps(data, ensure_ascii=True, indent=2)
        print(text)
    else:
        for a in answers:
            _print_answer(a)
    return EXIT_OK


def cmd_corpus(args, settings: Settings) -> int:
    from .chunk import chunk_essay
    from .corpus import corpus_report, format_report
    from .pipeline import load_sources

    loaded = load_sources(settings)  # corpus/ and the essays added in the app
    for w in loaded.warnings:
        print(f"warning: {w}", file=sys.stderr)
    chunks = {e.meta.id: chunk_essay(e, settings.chunk) for e in loaded.essays}
    print(format_report(corpus_report(loaded.essays, chunks)))
    print()
    print(_description_report(settings, loaded.essays, [c for cs in chunks.values() for c in cs]))
    return EXIT_OK


def _description_report(settings: Settings, essays, chunks) -> str:
    """Per essay, how many passages have a situation description and which have none (they are searched all the
    same; a description adds evidence and teaches the tuned model)."""
    from .pipeline import learned_descriptions, situation_records

    learned = learned_descriptions(settings)
    records, warnings = situation_records(settings.corpus_dir, essays, chunks, learned)
    described = {i for r in records for i in r["chunks"]}
    learned_entries = len({r["entry"] for r in records if r.get("learned")})
    lines = [
        f"situation descriptions: {len({r['entry'] for r in records})} entries, {len(records)} texts "
        f"({learned_entries} learned from trainers, {settings.learned_file}); "
        f"{len(described)} of {len(chunks)} passages described"
    ]
    for essay in essays:
        mine = [c.id for c in chunks if c.essay_id == essay.meta.id]
        missing = [i for i in mine if i not in described]
        listed = (
            ""
            if not missing
            else "; none described"
            if len(missing) == len(mine)
            else f"; without a description: {', '.join(missing)}"
        )
        lines.append(f"  {essay.meta.id}: {len(mine) - len(missing)}/{len(mine)} described{listed}")
    for item in learned:  # beside the editors' ones, marked as learned
        lines.append(f"  learned: {item.passage or item.essay} ← {item.field} “{item.text}” ({item.added or '?'})")
    lines.extend(f"  warning: {w}" for w in warnings)
    return "\n".join(lines)


def cmd_info(args, settings: Settings) -> int:
    from . import index as ix

    print(
        f"corpus: {settings.corpus_dir}\nindex:  {settings.index_dir}\nmodel:  {settings.model}\n"
        f"model cache: {settings.model_cache_dir}"
    )
    try:
        build = ix.current_build(settings.index_dir)
        manifest = ix.read_manifest(build)
    except ix.IndexError_ as exc:
        print(f"index: {exc}")
        return EXIT_ERROR
    print(f"build:  {build}\nchunks dump: {build / ix.CHUNKS_FILE}")
    print(json.dumps(asdict(manifest), ensure_ascii=False, indent=2))
    return EXIT_OK


def cmd_eval(args, settings: Settings) -> int:
    from .evaluate import run_cli

    return run_cli(args, settings)


COMMANDS = {"build": cmd_build, "ask": cmd_ask, "corpus": cmd_corpus, "info": cmd_info, "eval": cmd_eval}


def _tolerant_streams() -> None:
    """Reliability fix: text pasted from anywhere must not abort a run. Undecodable stdin bytes become U+FFFD
    (they used to end every query with a UnicodeDecodeError), and a stdout/stderr that cannot encode Chinese (an
    ASCII locale, a Windows pipe) gets backslash escapes instead of a UnicodeEncodeError; JSON stays valid."""
    for stream, errors in ((sys.stdin, "replace"), (sys.stdout, "backslashreplace"), (sys.stderr, "backslashreplace")):
        try:
            stream.reconfigure(errors=errors)  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # not a TextIOWrapper (tests, embedding): leave it
            pass


def main(argv: list[str] | None = None) -> int:
    _tolerant_streams()
    if not sys.stderr.isatty():  # progress bars (transformers' "Loading weights") only for a person watching
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    args = _parser().parse_args(argv)
    settings = _settings(args)
    from . import index as ix

    try:
        return COMMANDS[args.command](args, settings)
    except ix.IndexError_ as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ix.IndexStale) or getattr(args, "no_build", False) else EXIT_ERROR
    except (FileNotFoundError, ValueError) as exc:
        for line in str(exc).splitlines() or [repr(exc)]:  # a MetadataError has one line per problem
            print(f"error: {line}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
