"""A pass's work, read from the state DB a page at a time instead of as one list, so memory stays flat
however many files there are.

Fresh work (never failed) comes first, then retries, each state in id order, as ``StateDB.work_page``
gives them.  ``gate`` applies the user's per-file rules to all of it once, recording what they keep out and
counting the rest (for the progress bar); iterating afterwards yields the rows the rules let in, using
the same clock reading so the same rows are let in.
"""

from __future__ import annotations

from collections.abc import Iterator

from camroll.agent.backup.filepolicy import ServerLimits, check_stat
from camroll.agent.backup.rulegate import count_decision, record_decision
from camroll.agent.events import Summary
from camroll.agent.settings.config import AgentConfig
from camroll.agent.state.db import FileRow, StateDB

PAGE = 1000


class WorkFeed:
    def __init__(self, db: StateDB, cfg: AgentConfig, now: float, *, include_parked: bool,
                 settle_seconds: float) -> None:
        self.db = db
        self.cfg = cfg
        self.now = now
        self.include_parked = include_parked
        self.settle_seconds = settle_seconds

    def _rows(self) -> Iterator[FileRow]:
        # Ids already given: a file that fails during this pass must not come back as a retry in it.
        given: set[int] = set()
        for retries in (False, True):
            for state in StateDB.WORK_STATES:
                after = 0
                while True:
                    page = self.db.work_page(self.now, retries=retries, state=state, after_id=after, limit=PAGE,
                                             include_parked=self.include_parked)
                    if not page:
                        break
                    after = page[-1].id
                    for row in page:
                        if row.id not in given:
                            given.add(row.id)
                            yield row

    def gate(self, summary: Summary) -> tuple[int, int]:
        """Record the files the per-file rules keep out of this pass (by stat alone, before any read);
        return how many files and bytes are left.  A file that waits for the same reason as last time
        is counted, not written again."""
        files = nbytes = 0
        with self.db.batch():
            for row in self._rows():
                d = check_stat(row.path, row.folder, row.size, row.mtime_ns, self.cfg.policy, ServerLimits(),
                               self.now, self.settle_seconds)
                if d is None:
                    files += 1
                    nbytes += row.size
                    continue
                if d.state == "waiting" and row.state == "waiting" and row.code == d.code:
                    summary.files_waiting += 1
                    continue
                record_decision(self.db, row, d)
                count_decision(summary, row, d)
        return files, nbytes

    def __iter__(self) -> Iterator[FileRow]:
        for row in self._rows():
            if check_stat(row.path, row.folder, row.size, row.mtime_ns, self.cfg.policy, ServerLimits(),
                          self.now, self.settle_seconds) is None:
                yield row
