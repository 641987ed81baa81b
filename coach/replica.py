"""Replicas: several app processes sharing one index folder pick up a new build without a restart.

A build (by any process: another replica's rebuild, `coach build` on the shared folder) ends by switching
`index/CURRENT` atomically. Each replica's `IndexWatcher` reads that small file every few seconds (one stat and one
read) and, when it names another build, loads and verifies that build in the background and swaps it into the
Coach it serves, the way `Coach.rebuild` swaps its own: questions in flight finish on the index they started with.
Builds themselves take `index/.lock` (coach/index.py `build_lock`), so only one process builds at a time.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from . import index as ix
from . import pipeline

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 2.0


def poll_interval() -> float:
    """`$COACH_INDEX_POLL_S` (seconds between looks at index/CURRENT; 0 turns the watcher off), default 2."""
    try:
        return max(0.0, float(os.environ.get("COACH_INDEX_POLL_S", DEFAULT_POLL_S)))
    except ValueError:
        log.warning("COACH_INDEX_POLL_S must be a number of seconds; using %s", DEFAULT_POLL_S)
        return DEFAULT_POLL_S


class IndexWatcher:
    """Polls index/CURRENT for the Coach a holder serves (coach/ui.py CoachHolder: `get(wait=False)`, and a
    `rebuild_lock` held while this process rebuilds itself) and swaps in a new build when it appears."""

    def __init__(self, holder: Any, interval_s: float | None = None):
        self.holder = holder
        self.interval_s = poll_interval() if interval_s is None else interval_s
        self.swaps = 0
        self.last_problem: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "IndexWatcher":
        if self.interval_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="coach-index-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one bad look
                log.exception("index watcher: check failed; the current index stays in use")

    def check(self) -> bool:
        """One look: swap in the build CURRENT names if it is not the one served. True when it swapped."""
        coach = self.holder.get(wait=False) if getattr(self.holder, "ready", True) else None  # never loads
        lock = getattr(self.holder, "rebuild_lock", None)
        if coach is None or (lock is not None and lock.locked()):  # loading, or this process is rebuilding
            return False
        try:
            build = ix.current_build(coach.settings.index_dir)
        except ix.IndexError_ as exc:  # CURRENT missing or odd mid-copy: keep serving what we have
            self._problem(str(exc))
            return False
        if build.name == coach.index.build_dir.name:
            return False
        try:
            loaded = pipeline.load_build(build)
        except (ix.IndexError_, OSError, ValueError) as exc:
            self._problem(
                f"the new build {build.name} cannot be loaded ({exc}); still serving {coach.index.build_dir.name}"
            )
            return False
        reasons = coach.stale_reasons(loaded)
        if reasons:  # built with another model or settings than this replica runs: not ours to serve
            self._problem(
                f"the new build {build.name} does not match this replica ({'; '.join(reasons)}); "
                f"still serving {coach.index.build_dir.name}"
            )
            return False
        coach.use(loaded)
        self.swaps += 1
        self.last_problem = None
        log.info("index watcher: now serving build %s", build.name)
        return True

    def _problem(self, message: str) -> None:
        if message != self.last_problem:
            log.warning("index watcher: %s", message)
        self.last_problem = message
