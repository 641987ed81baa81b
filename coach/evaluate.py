"""`coach eval QUERIES.jsonl`: retrieval quality per language and overall, every search mode side by side.

Query file: one JSON object per line, `{"query", "lang" ("en" | "zh" | "zh-Hant"), "relevant": [phrases],
"out_of_domain": bool (optional), "split": "tune" | "heldout" (optional)}`. A passage is relevant when its text,
normalised (simplified Chinese, lower case, no punctuation or spaces), contains one of the phrases (normalised
the same way).

Ranking metrics use the top 10 with diversity off (diversity is a presentation choice). They are computed for
every in-domain question on the ranking it gets, whether or not the question was also flagged out-of-domain;
wrong flags are reported separately (`in-domain flagged`).
"""

from __future__ import annotations

import json
import re
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Settings

EVAL_TOP_K = 10
HIT_KS = (1, 3, 5)
LANGS = ("en", "zh", "zh-Hant")

_PUNCT_OR_SPACE = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Simplified Chinese, lower case, without punctuation or whitespace: the form phrases are matched in."""
    from .clean import to_simplified

    return _PUNCT_OR_SPACE.sub("", to_simplified(unicodedata.normalize("NFKC", text)).lower())


# ---------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    query: str
    lang: str
    relevant: tuple[str, ...]  # normalised phrases
    out_of_domain: bool = False
    split: str = "tune"


def load_cases(path: Path) -> list[Case]:
    cases = []
    for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            case = Case(
                row["query"],
                row.get("lang", "zh"),
                tuple(normalise(p) for p in row.get("relevant", []) if normalise(p)),
                bool(row.get("out_of_domain", False)),
                row.get("split", "tune"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a query line ({exc})") from exc
        if not case.out_of_domain and not case.relevant:
            raise ValueError(f"{path}:{n}: an in-domain query needs at least one relevant phrase")
        cases.append(case)
    return cases


# ---------------------------------------------------------------------------------------------- metrics


def is_relevant(passage_norm: str, phrases: tuple[str, ...]) -> bool:
    return any(p in passage_norm for p in phrases)


def first_relevant_rank(passages_norm: list[str], phrases: tuple[str, ...]) -> int | None:
    """1-based rank of the first relevant passage, None when none is relevant."""
    return next((r for r, text in enumerate(passages_norm, 1) if is_relevant(text, phrases)), None)


def unreachable(cases: list[Case], passages_norm: list[str]) -> list[Case]:
    """In-domain cases no passage can satisfy: none of their phrases occurs in any passage's text (a phrase copied
    from a section heading, which the chunker keeps out of the text, or one spanning two passages). They count as
    misses in every mode, so `coach eval` names them."""
    return [c for c in cases if not c.out_of_domain and not any(is_relevant(t, c.relevant) for t in passages_norm)]


def hit_at(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int = EVAL_TOP_K) -> float:
    """MRR@k contribution: 1/rank when a relevant passage is within the top k, else 0."""
    return 1.0 / rank if rank is not None and rank <= k else 0.0


def ood_scores(flagged: list[bool], truly_ood: list[bool]) -> dict[str, float | None]:
    """Precision and recall of the out-of-domain flag, and the share of in-domain questions wrongly flagged."""
    tp = sum(f and t for f, t in zip(flagged, truly_ood))
    fp = sum(f and not t for f, t in zip(flagged, truly_ood))
    n_ood = sum(truly_ood)
    n_in = len(truly_ood) - n_ood
    return {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / n_ood if n_ood else None,
        "false_flag_rate": fp / n_in if n_in else None,
    }


def summarise(ranks: list[int | None]) -> dict[str, float]:
    """hit@1/3/5 and MRR@10 over the first-relevant ranks of a group of questions."""
    n = len(ranks)
    out: dict[str, float] = {"n": n}
    for k in HIT_KS:
        out[f"hit@{k}"] = sum(hit_at(r, k) for r in ranks) / n if n else 0.0
    out["mrr@10"] = sum(reciprocal_rank(r) for r in ranks) / n if n else 0.0
    return out


# ---------------------------------------------------------------------------------------------- running


@dataclass
class Outcome:
    case: Case
    rank: int | None
    flagged: bool
    returned: list[str]  # chunk ids, best first
    snippets: list[str]
    ms: float


@dataclass
class ModeReport:
    mode: str
    outcomes: list[Outcome] = field(default_factory=list)

    def metrics(self, split: str | None = None) -> dict:
        chosen = [o for o in self.outcomes if split is None or o.case.split == split]
        inside = [o for o in chosen if not o.case.out_of_domain]
        groups = {lang: summarise([o.rank for o in inside if o.case.lang == lang]) for lang in LANGS}
        groups["all"] = summarise([o.rank for o in inside])
        ood = ood_scores([o.flagged for o in chosen], [o.case.out_of_domain for o in chosen])
        ood["n_ood"] = sum(o.case.out_of_domain for o in chosen)
        times = sorted(o.ms for o in chosen)
        return {"by_lang": groups, "ood": ood, "latency_ms_p50": times[len(times) // 2] if times else 0.0}


class _MemoEmbedder:
    """Evaluation only: every mode asks the same questions, so each text is encoded once."""

    def __init__(self, inner):
        self.inner, self.memo = inner, {}

    def encode_queries(self, texts, *a, **kw):
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if missing:
            self.memo.update(zip(missing, self.inner.encode_queries(missing, *a, **kw)))
        return np.stack([self.memo[t] for t in texts])

    def __getattr__(self, name):
        return getattr(self.inner, name)


def run_modes(coach, cases: list[Case], modes: list[str]) -> list[ModeReport]:
    """Ask every case in every mode (top 10, diversity off); query encodings are shared between modes."""
    inner = coach.embedder
    coach.embedder = _MemoEmbedder(inner)
    try:
        return _run_modes(coach, cases, modes)
    finally:
        coach.embedder = inner


def _run_modes(coach, cases: list[Case], modes: list[str]) -> list[ModeReport]:
    reports = []
    for mode in modes:
        report = ModeReport(mode)
        for case in cases:
            t = time.perf_counter()
            answer = coach.ask(case.query, top_k=EVAL_TOP_K, diverse=False, mode=mode)
            ms = (time.perf_counter() - t) * 1e3
            texts = [normalise(h.chunk.text) for h in answer.results]
            report.outcomes.append(
                Outcome(
                    case,
                    None if case.out_of_domain else first_relevant_rank(texts, case.relevant),
                    answer.out_of_domain,
                    [h.chunk.id for h in answer.results],
                    [h.chunk.text[:40].replace("\n", " ") for h in answer.results],
                    ms,
                )
            )
        reports.append(report)
    return reports


# ---------------------------------------------------------------------------------------------- output


def _fmt(v) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def format_table(reports: list[ModeReport], split: str | None) -> str:
    metrics = {r.mode: r.metrics(split) for r in reports}
    first = metrics[reports[0].mode]
    title = "all questions" if split is None else f"split: {split}"
    width = max([10] + [len(r.mode) + 2 for r in reports])
    lines = [
        f"== {title} ({first['by_lang']['all']['n']} in-domain, {first['ood']['n_ood']} out-of-domain)",
        f"{'':22}" + "".join(f"{r.mode:>{width}}" for r in reports),
    ]
    for group in (*LANGS, "all"):
        n = first["by_lang"][group]["n"]
        if not n:
            continue
        for metric in ("hit@1", "hit@3", "hit@5", "mrr@10"):
            label = f"{group} {metric}" + (f" (n={n})" if metric == "hit@1" else "")
            lines.append(
                f"{label:22}" + "".join(f"{_fmt(metrics[r.mode]['by_lang'][group][metric]):>{width}}" for r in reports)
            )
    for key, label in (
        ("precision", "OOD precision"),
        ("recall", "OOD recall"),
        ("false_flag_rate", "in-domain flagged"),
    ):
        lines.append(f"{label:22}" + "".join(f"{_fmt(metrics[r.mode]['ood'][key]):>{width}}" for r in reports))
    return "\n".join(lines)


def format_misses(report: ModeReport, split: str | None, k: int = 3) -> str:
    lines = [
        f"== misses of mode '{report.mode}'"
        + (f" ({split})" if split else "")
        + f": no relevant passage in the top {k}, or a wrong out-of-domain flag"
    ]
    for o in report.outcomes:
        if split is not None and o.case.split != split:
            continue
        wrong_flag = o.flagged != o.case.out_of_domain
        if o.case.out_of_domain and not wrong_flag:
            continue
        if not o.case.out_of_domain and hit_at(o.rank, k) and not wrong_flag:
            continue
        why = (
            "not flagged out-of-domain"
            if o.case.out_of_domain
            else f"first relevant at {o.rank or '>10'}" + ("; wrongly flagged out-of-domain" if wrong_flag else "")
        )
        lines.append(f"- [{o.case.lang}/{o.case.split}] {o.case.query}  ({why})")
        if not o.case.out_of_domain:
            lines.append(f"    wanted: {' | '.join(o.case.relevant)}")
        for cid, snip in list(zip(o.returned, o.snippets))[:k]:
            lines.append(f"    got {cid}: {snip}")
    return "\n".join(lines)


def report_json(reports: list[ModeReport], splits: list[str | None]) -> dict:
    results: dict = {}
    out = {"top_k": EVAL_TOP_K, "diversity": False, "modes": [r.mode for r in reports], "results": results}
    for split in splits:
        results[split or "all"] = {r.mode: r.metrics(split) for r in reports}
    best = reports[-1]
    out["misses"] = [
        {
            "query": o.case.query,
            "lang": o.case.lang,
            "split": o.case.split,
            "out_of_domain": o.case.out_of_domain,
            "flagged": o.flagged,
            "rank": o.rank,
            "returned": o.returned[:3],
        }
        for o in best.outcomes
        if o.flagged != o.case.out_of_domain or (not o.case.out_of_domain and not hit_at(o.rank, 3))
    ]
    return out


def _stderr_progress(fraction: float, message: str) -> None:
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr)


def run_cli(args, settings) -> int:
    from .retrieve import MODES, Coach

    cases = load_cases(args.queries_file)
    split = getattr(args, "split", None)
    if split:
        known = sorted({c.split for c in cases})
        cases = [c for c in cases if c.split == split]
        if not cases:
            print(f"no questions in split {split!r}; the file has: {', '.join(known)}", file=sys.stderr)
            return 2
    modes = list(MODES)
    if getattr(args, "modes", None):
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        unknown = [m for m in modes if m not in MODES]
        if unknown or not modes:
            print(
                f"unknown search mode(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODES)}",
                file=sys.stderr,
            )
            return 2
    show_misses = not getattr(args, "no_misses", False)
    progress = _stderr_progress
    if getattr(args, "leave_one_essay_out", False):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="coach-loeo-") as work:
            result = leave_one_essay_out(settings, cases, Path(work), progress)
        if args.json:
            json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
            print()
        else:
            print(format_leave_one_out(result))
        return 0
    work_dir = None
    if getattr(args, "with_essays", None):
        import tempfile

        work_dir = tempfile.TemporaryDirectory(prefix="coach-eval-")
        corpus = corpus_copy(settings.corpus_dir, Path(work_dir.name) / "corpus", extra_essays=args.with_essays)
        settings = isolated(settings, corpus, Path(work_dir.name) / "index")
    coach = Coach(settings, progress=progress)
    coach.ask("warm-up", top_k=1)  # load lazy resources (dictionary, tokenizer) before timing
    reports = run_modes(coach, cases, modes)
    splits: list[str | None] = [None] + sorted({c.split for c in cases}, key=lambda s: s != "tune")
    if len(splits) == 2:
        splits = [None]
    if args.json:
        out = report_json(reports, splits)
        if not show_misses:
            del out["misses"]
        json.dump(out, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    print(
        f"{len(cases)} questions from {args.queries_file}; ranking metrics on the top {EVAL_TOP_K} with "
        "diversity off; modes: " + ", ".join(modes)
    )
    lost = unreachable(cases, [normalise(c.text) for c in coach.index.chunks])
    if lost:
        print(
            f"  note: {len(lost)} in-domain question(s) have no relevant passage in the index (no phrase occurs in "
            "a passage's text, e.g. it is a section heading); no mode can find them"
        )
    for m in modes:
        print(f"  {m:10} {MODES.get(m, '')}")
    for s in splits:
        print()
        print(format_table(reports, s))
    if show_misses:
        print()
        print(format_misses(reports[-1], split))
    return 0


# ---------------------------------------------------------------------------------------------- other corpora


def isolated(settings: Settings, corpus: Path, index_dir: Path) -> Settings:
    """Settings that build from `corpus` alone: no essays added in the app and no learned descriptions (var/), so
    an evaluation corpus means the same on every machine and a left-out essay keeps none of its descriptions."""
    return settings.with_overrides(
        corpus_dir=corpus,
        index_dir=index_dir,
        upload_dir=index_dir.parent / "no-uploads",
        learned_file=index_dir.parent / "no-learned-situations.toml",
    )


def corpus_copy(
    corpus_dir: Path, dest: Path, *, drop_descriptions_of: str | None = None, extra_essays: Path | None = None
) -> Path:
    """A temporary corpus folder for evaluation (corpus/ itself is never written): a copy of `corpus_dir`, without
    the situation descriptions of essay `drop_descriptions_of`, plus the essays (and essays.toml entries) of the
    folder `extra_essays`."""
    import shutil
    import tomllib

    from .corpus import SITUATIONS_FILE

    dest.mkdir(parents=True, exist_ok=True)
    for p in sorted(Path(corpus_dir).iterdir()):
        if p.is_file() and not p.name.startswith("."):
            shutil.copyfile(p, dest / p.name)
    situations = dest / SITUATIONS_FILE
    if drop_descriptions_of and situations.is_file():
        entries = tomllib.loads(situations.read_text("utf-8")).get("situation", [])
        kept = [e for e in entries if e.get("essay") != drop_descriptions_of]
        situations.write_text("".join(_toml_table("situation", e) for e in kept), "utf-8")
    if extra_essays:
        metadata = dest / "essays.toml"
        for p in sorted(Path(extra_essays).iterdir()):
            if p.suffix in (".txt", ".md", ".html"):
                shutil.copyfile(p, dest / p.name)
            elif p.name == "essays.toml":
                old = metadata.read_text("utf-8") if metadata.is_file() else ""
                metadata.write_text(old + "\n" + p.read_text("utf-8"), "utf-8")
    return dest


def _toml_table(name: str, entry: dict) -> str:
    # JSON string escapes are valid TOML basic-string escapes
    return (
        f"[[{name}]]\n"
        + "".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in entry.items() if isinstance(v, str))
        + "\n"
    )


def answered_only_by(cases: list[Case], chunks, essay_id: str) -> list[Case]:
    """In-domain cases whose relevant passages all belong to one essay, `essay_id`."""
    texts = [(c.essay_id, normalise(c.text)) for c in chunks]
    out = []
    for case in cases:
        if case.out_of_domain:
            continue
        owners = {eid for eid, t in texts if is_relevant(t, case.relevant)}
        if owners == {essay_id}:
            out.append(case)
    return out


def hit3_by_lang(coach, cases: list[Case]) -> dict:
    """hit@3 per language and pooled (top 10, diversity off, the default mode), and the in-domain questions wrongly
    flagged out-of-domain."""
    out: dict = {}
    for lang in (*LANGS, "all"):
        chosen = [c for c in cases if lang == "all" or c.lang == lang]
        hits = flagged = 0
        for c in chosen:
            answer = coach.ask(c.query, top_k=EVAL_TOP_K, diverse=False)
            rank = first_relevant_rank([normalise(h.chunk.text) for h in answer.results], c.relevant)
            hits += hit_at(rank, 3) > 0
            flagged += answer.out_of_domain
        out[lang] = {
            "n": len(chosen),
            "hits": hits,
            "hit@3": hits / len(chosen) if chosen else None,
            "flagged": flagged,
        }
    return out


def leave_one_essay_out(settings, cases: list[Case], work: Path, progress=None) -> dict:
    """For each essay: rebuild (and retrain) without its situation descriptions, and score the questions only it
    answers; beside each, the same questions on the index built with every description. One model load."""
    from .embed import Embedder
    from .retrieve import Coach

    progress = progress or (lambda f, m: None)
    base = Embedder(settings.model, cache_dir=settings.model_cache_dir, vocabulary=settings.vocabulary)
    full = Coach(settings, embedder=base, progress=progress)
    essays = sorted(full.index.essays)
    result: dict = {"essays": {}, "pooled": {}}
    for n, essay in enumerate(essays):
        mine = answered_only_by(cases, full.index.chunks, essay)
        corpus = corpus_copy(settings.corpus_dir, work / f"corpus-{essay}", drop_descriptions_of=essay)

        def fold_progress(f: float, m: str, n: int = n, essay: str = essay) -> None:
            progress((n + f) / len(essays), f"{essay}: {m}")

        fold = Coach(
            isolated(settings, corpus, work / f"index-{essay}"),
            embedder=base,
            progress=fold_progress,
        )
        result["essays"][essay] = {
            "without": hit3_by_lang(fold, mine),
            "with": hit3_by_lang(full, mine),
            "tuning": fold.index.manifest.tuning,
        }
        del fold
    for column in ("without", "with"):
        pooled = {}
        for lang in (*LANGS, "all"):
            hits = sum(r[column][lang]["hits"] for r in result["essays"].values())
            n = sum(r[column][lang]["n"] for r in result["essays"].values())
            flagged = sum(r[column][lang]["flagged"] for r in result["essays"].values())
            pooled[lang] = {"n": n, "hits": hits, "hit@3": hits / n if n else None, "flagged": flagged}
        result["pooled"][column] = pooled
    return result


def format_leave_one_out(result: dict) -> str:
    lines = [
        "leave one essay out: hit@3 (top 10, diversity off) on the questions only that essay answers, "
        "rebuilt and retrained without its descriptions | with every description",
        f"{'essay':26}" + "".join(f"{lang:>22}" for lang in (*LANGS, "all")),
    ]
    rows = [(e, r["without"], r["with"]) for e, r in result["essays"].items()]
    rows.append(("pooled", result["pooled"]["without"], result["pooled"]["with"]))
    for name, without, with_ in rows:
        cells = []
        for lang in (*LANGS, "all"):
            a, b = without[lang], with_[lang]
            cells.append(f"{_fmt(a['hit@3'])} | {_fmt(b['hit@3'])} (n={a['n']})" if a["n"] else "-")
        lines.append(f"{name:26}" + "".join(f"{c:>22}" for c in cells))
    flagged = result["pooled"]["without"]["all"]["flagged"]
    lines.append(f"in-domain questions flagged out-of-domain without their essay's descriptions: {flagged}")
    return "\n".join(lines)
