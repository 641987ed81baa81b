"""The query side: a question prepared (`query`), scored by small named rankers (`rankers`), fused once (`fusion`),
under one frozen configuration (`config`). `coach.retrieve.Coach` puts them together."""

from .config import CANDIDATES, DIVERSITY_MARGIN, NO_DESCRIPTION_KEYWORD_FLOOR, SearchConfig
from .fusion import description_confidence, diversify, fuse, ranked
from .query import Query, prepare
from .rankers import Ranker, rankers_for

__all__ = [
    "CANDIDATES",
    "DIVERSITY_MARGIN",
    "NO_DESCRIPTION_KEYWORD_FLOOR",
    "Query",
    "description_confidence",
    "Ranker",
    "SearchConfig",
    "diversify",
    "fuse",
    "prepare",
    "ranked",
    "rankers_for",
]
