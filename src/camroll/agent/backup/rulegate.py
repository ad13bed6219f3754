"""The per-file rules (``filepolicy``) applied to a pass's work against the state DB: which files enter
the pipeline, and what the others are told (waiting or skipped, with a reason and a fix)."""

from __future__ import annotations

import time

from camroll.agent.backup.filepolicy import (
    LEFT_OUT_CODES,
    POLICY_CODES,
    Decision,
    ServerLimits,
    fingerprint,
)
from camroll.agent.events import Problem, Summary
from camroll.agent.log import logger
from camroll.agent.settings.config import AgentConfig
from camroll.agent.state.db import FileRow, StateDB

# The server's limits (filepolicy.ServerLimits as JSON), kept so passes and 'camroll why' work offline.
META_SERVER_LIMITS = "server_limits"
# Fingerprint of the rules behind policy skips; when it changes those files are looked at again.
META_POLICY_FINGERPRINT = "file_policy_fingerprint"
# Files skipped by a rule are looked at again this often even when nothing local changed, because the
# server's limits (learnt only by passes with work) may have been raised meanwhile.
RECHECK_SKIPS_SECONDS = 24 * 3600
META_SKIPS_RECHECKED = "skips_rechecked_at"


def stored_limits(db: StateDB) -> ServerLimits:
    return ServerLimits.from_json(db.get_meta(META_SERVER_LIMITS))


def store_limits(db: StateDB, cfg: AgentConfig, old: ServerLimits, new: ServerLimits) -> None:
    db.set_meta(META_SERVER_LIMITS, new.to_json())
    if old == ServerLimits():
        # First contact: nothing was skipped under other limits, so nothing to look at again.
        db.set_meta(META_POLICY_FINGERPRINT, fingerprint(cfg.policy, new))


def reopen_if_policy_changed(db: StateDB, cfg: AgentConfig, limits: ServerLimits) -> None:
    fp = fingerprint(cfg.policy, limits)
    old = db.get_meta(META_POLICY_FINGERPRINT)
    now = time.time()
    last = float(db.get_meta(META_SKIPS_RECHECKED) or 0)
    if old == fp and now - last < RECHECK_SKIPS_SECONDS:
        return
    if old is not None:
        why = ("the backup policy or the server's limits changed" if old != fp
               else "skipped files are looked at again daily, in case the server's limits changed")
        n = db.reopen_codes(POLICY_CODES, why)
        if n:
            logger.info("%d skipped files looked at again: %s", n, why)
    db.set_meta(META_POLICY_FINGERPRINT, fp)
    db.set_meta(META_SKIPS_RECHECKED, f"{now:.3f}")


def record_decision(db: StateDB, row: FileRow, d: Decision) -> None:
    if d.state == "skipped":
        db.set_skipped(row.id, d.reason, code=d.code, fix=d.fix)
    else:
        db.set_waiting(row.id, d.reason, d.code, d.fix)


def count_decision(summary: Summary, row: FileRow, d: Decision) -> None:
    if d.code in LEFT_OUT_CODES:
        summary.files_left_out += 1  # a choice: counted, not listed
    elif d.state == "skipped":
        summary.files_skipped += 1
        summary.skipped.append(Problem(row.path, f"{d.reason}. {d.fix}"))
    else:
        summary.files_waiting += 1
