"""Fine-tune the embedding model on the editors' situation descriptions, so what they teach reaches every passage.

A description (corpus/situations.toml) is a question an agent asks, tied by its anchor to the sentence that answers
it. Training pulls each description's vector towards its sentence's vector and away from the other sentences in its
batch (in-batch negatives, a symmetric cross-entropy: sentence-transformers' MultipleNegativesRankingLoss run both
ways). Both sides go through one shared encoder, so an essay nobody described is embedded by the same tuned weights
and its passages meet questions the way described ones do: the model learns how agents ask about veterans' advice,
not which passage each description labels.

The tuned model is a generated artefact like the converted one: a sentence-transformers folder under the model
cache, named by a hash of the base model, the training pairs and these settings (`tuning_key`), built when missing
and never committed. Only the embed layer imports sentence-transformers: the model comes from `embed.load_trainable`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

Progress = Callable[[float, str], None]

TUNING_FILE = "coach-tuning.json"  # written into a tuned model folder: what built it
# touched when a build takes a cached model, for pruning (a name without a suffix: the model's identity, and its ONNX
# export's stamp, hash the .json/.safetensors/... files, so this one changes neither)
USED_FILE = ".last-used"


@dataclass(frozen=True)
class TuneSettings:
    """How the model is fine-tuned. The evidence for each number is in eval/results.md."""

    epochs: int = 1
    learning_rate: float = 2e-5
    batch_size: int = 32
    max_seq_length: int = 64  # descriptions and anchor sentences fit; keeps a step cheap on a CPU
    scale: float = 20.0  # inverse temperature of the in-batch softmax (sentence-transformers' default)
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Pair:
    """One training example: a description (as questions are searched) and the sentence that answers it."""

    query: str
    target: str


def training_pairs(records: Sequence[dict], sentence_of_anchor: Callable[[dict], str | None]) -> list[Pair]:
    """A pair per situation text: `records` are pipeline.situation_records rows; `sentence_of_anchor` finds the
    sentence (or passage text) holding a record's anchor, None when it cannot."""
    from .clean import to_simplified

    pairs = []
    for r in records:
        target = sentence_of_anchor(r)
        if target:
            query = to_simplified(r["text"]) if r["lang"] == "zh-Hant" else r["text"]
            pairs.append(Pair(query, target))
    return pairs


def tuning_key(base_fingerprint: str, pairs: Sequence[Pair], settings: TuneSettings) -> str:
    """Names a tuned model: the same base model, pairs and settings give the same folder."""
    h = hashlib.sha256(base_fingerprint.encode())
    h.update(json.dumps(settings.as_dict(), sort_keys=True).encode())
    for p in pairs:
        h.update(f"{p.query}\0{p.target}\n".encode())
    return h.hexdigest()[:16]


def tuned_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / f"tuned-{key}"


def is_tuned_folder(path: Path, key: str | None = None) -> bool:
    """A complete tuned model folder (optionally: of this key)."""
    info = Path(path) / TUNING_FILE
    if not info.is_file():
        return False
    try:
        data = json.loads(info.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return key is None or data.get("key") == key


def ensure_tuned(
    base_path: Path,
    base_name: str,
    base_fingerprint: str,
    pairs: Sequence[Pair],
    settings: TuneSettings,
    cache_dir: Path,
    progress: Progress | None = None,
) -> Path:
    """The tuned model folder for these pairs, trained now when it is not cached. Written into a temporary folder
    and renamed into place, so an interrupted run leaves nothing that looks complete."""
    key = tuning_key(base_fingerprint, pairs, settings)
    final = tuned_path(cache_dir, key)
    if is_tuned_folder(final, key):
        _mark_used(final)
        return final
    if not pairs:
        raise ValueError("nothing to tune on: no situation description attaches to a passage")
    from .embed import load_trainable

    progress = progress or (lambda fraction, message: None)
    started = time.time()
    model = load_trainable(base_path)
    train(model, pairs, settings, progress)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-tuned-", dir=cache_dir))
    try:
        model.save(str(tmp))
        info = {
            "key": key,
            "base_model": base_name,
            "base_fingerprint": base_fingerprint,
            "pairs": len(pairs),
            "settings": settings.as_dict(),
            "seconds": round(time.time() - started, 1),
        }
        (tmp / TUNING_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=1), "utf-8")
        if final.exists():  # a stale or half-written folder of the same key
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def prune_tuned(cache_dir: Path, keep: set[Path], keep_count: int, tmp_age_s: float = 3600) -> list[Path]:
    """Delete the tuned models nobody needs: every one beyond the `keep_count` most recently used (a build that
    takes a cached model marks it used) unless it is in `keep` (the folders indexes are embedded with), and the
    temporary folders of trainings abandoned over `tmp_age_s` ago. Returns what was removed."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    kept = {Path(p).resolve() for p in keep}
    models = sorted((p for p in cache_dir.glob("tuned-*") if is_tuned_folder(p)), key=_last_used, reverse=True)
    doomed = [p for p in models[max(0, keep_count) :] if p.resolve() not in kept]
    now = time.time()
    doomed += [p for p in cache_dir.glob(".tmp-tuned-*") if p.is_dir() and now - _mtime(p) > tmp_age_s]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed


def _last_used(folder: Path) -> float:
    used = folder / USED_FILE
    return _mtime(used if used.is_file() else folder / TUNING_FILE)


def _mtime(path: Path) -> float:
    """Modification time, or 0 for a path another process just removed (pruning runs beside other builds)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _mark_used(folder: Path) -> None:
    try:
        (folder / USED_FILE).touch()
    except OSError:  # a read-only cache: it is only pruned by whoever can write it
        pass


def batches(targets: Sequence[str], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of pair positions in which no target sentence appears twice: a repeated target would be
    its own in-batch negative."""
    pool = list(range(len(targets)))
    rng.shuffle(pool)
    out = []
    while pool:
        batch: list[int] = []
        seen: set[str] = set()
        rest: list[int] = []
        for i in pool:
            if len(batch) < batch_size and targets[i] not in seen:
                batch.append(i)
                seen.add(targets[i])
            else:
                rest.append(i)
        out.append(batch)
        pool = rest
    return out


def train(model, pairs: Sequence[Pair], settings: TuneSettings, progress: Progress) -> None:
    """Fine-tune a sentence-transformers model in place: the encoder layers learn, the word embeddings stay."""
    import torch

    from .embed import PASSAGE_PROMPT, QUERY_PROMPT

    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    model.max_seq_length = settings.max_seq_length
    bert = model[0].auto_model
    for p in bert.embeddings.parameters():
        p.requires_grad = False
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.01)
    targets = [p.target for p in pairs]
    plan = [b for _ in range(settings.epochs) for b in batches(targets, settings.batch_size, rng)]
    warmup = max(1, len(plan) // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (len(plan) - s) / len(plan))
    )

    def embed(texts: list[str], prompt: str):
        features = model.preprocess(texts, prompt=prompt)
        return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)

    model.train()
    for step, batch in enumerate(plan):
        q = embed([pairs[i].query for i in batch], QUERY_PROMPT)
        t = embed([pairs[i].target for i in batch], PASSAGE_PROMPT)
        logits = settings.scale * q @ t.T
        labels = torch.arange(len(batch))
        loss = (
            torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)
        ) / 2
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        progress((step + 1) / len(plan), f"tuning the model on {len(pairs)} descriptions: step {step + 1}/{len(plan)}")
    model.eval()
