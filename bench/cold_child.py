"""Run in a fresh interpreter by cold_start.py; prints one JSON line of wall-clock timestamps (time.time()).

cold_child.py answer "question"   imports -> Coach(build=False) on the existing index -> first answer
cold_child.py setup  "question"   model conversion + index build into the (empty) folders named by
                                  COACH_MODEL_CACHE / COACH_INDEX_DIR, then the first answer
"""

from __future__ import annotations

import json
import resource
import sys
import time

T_START = time.time()

sys.path.insert(0, __file__.rsplit("/", 2)[0])  # project root


def main() -> None:
    mode, question = sys.argv[1], sys.argv[2]
    out = {"t_main": T_START}
    from coach.config import Settings
    from coach.retrieve import Coach

    out["t_imported_coach"] = time.time()
    settings = Settings()
    if mode == "setup":
        from coach import model as bundled

        bundled.ensure_converted(settings.model_cache_dir)
        out["t_converted"] = time.time()
        from coach.embed import Embedder

        embedder = Embedder(settings.model, cache_dir=settings.model_cache_dir)
        out["t_model_loaded"] = time.time()
        coach = Coach(settings, embedder=embedder, build=True)
        out["t_index_built"] = time.time()
        out["passages"] = len(coach.index.chunks)
    else:
        from coach.onnx_embed import query_embedder  # what Coach itself picks: ONNX Runtime for queries

        out["t_imported_embed"] = time.time()
        embedder = query_embedder(settings)
        out["t_model_loaded"] = time.time()
        coach = Coach(settings, embedder=embedder, build=False)
        out["t_index_loaded"] = time.time()
    answer = coach.ask(question, top_k=3)
    out["t_first_answer"] = time.time()
    out["results"] = len(answer.results)
    out["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
