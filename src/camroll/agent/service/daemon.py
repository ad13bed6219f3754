"""``camroll agent``: the long-running loop that decides when to run a backup pass.

A pass (``backup.run.run_backup``) runs at start; when files under the folders change and have settled
(:class:`~camroll.agent.service.watch.ChangeBatcher`); when the config file changes (so ``camroll settings set
enabled false`` pauses a running agent and ``camroll folder add`` is watched at once); on a periodic
rescan as a safety net for missed events; when a failed file's retry time comes; every
``condition_interval`` while the policy pauses backups (if the conditions changed); and with back-off
while the server is unreachable or full.  One pass at a time; passes run on a worker thread so the
loop keeps watching the config and signals while one runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from camroll.agent.errors import AgentError
from camroll.agent.log import logger
from camroll.agent.paths import AgentPaths
from camroll.agent.service.heartbeat import HeartbeatSender, build_heartbeat, switched_off
from camroll.agent.service.watch import ChangeBatcher, FolderWatcher
from camroll.agent.settings.config import AgentConfig, load_config

if TYPE_CHECKING:
    import httpx

    from camroll.agent.events import Summary
    from camroll.agent.settings.conditions import Probes

Say = Callable[[str], None]
RETRY_FLOOR = 5.0
CONDITION_CHECK = "conditions changed"


@dataclass(frozen=True)
class DaemonOptions:
    """Timings of the loop, in seconds.  Tests shorten them; the defaults suit a phone or laptop."""

    rescan_interval: float = 15 * 60.0
    condition_interval: float = 60.0
    # Per file: a new photo goes about a second after its last change (see watch.ChangeBatcher).
    debounce: float = 1.0
    stable: float = 1.0
    max_wait: float = 30.0
    retry_base: float = 30.0
    retry_cap: float = 15 * 60.0
    heartbeat_interval: float = 300.0
    lock_retry: float = 10.0
    tick: float = 0.5


@dataclass(frozen=True)
class PassOutcome:
    """How a pass ended: a summary, or the reason it could not run."""

    summary: Summary | None = None
    error: str | None = None
    busy: bool = False  # another ``camroll backup`` held the pass lock


def backoff_delay(stops: int, base: float, cap: float) -> float:
    """Delay before retry number ``stops`` (1-based) after a stop: base, 2 x base, 4 x base ... cap."""
    return float(min(cap, base * 2 ** min(max(stops - 1, 0), 30)))


@dataclass(frozen=True)
class Plan:
    """What the loop does after a pass: the next pass in ``delay`` seconds (``why`` says why), and
    whether to re-check the backup policy's conditions meanwhile."""

    delay: float
    why: str
    paused: bool = False


def plan_after(outcome: PassOutcome, stops: int, opts: DaemonOptions, *, now: float,
               next_retry_at: float | None) -> Plan:
    """The schedule after ``outcome``.  ``stops`` counts consecutive server/quota stops including
    this one; ``now`` and ``next_retry_at`` (the earliest failed file's retry time) are wall-clock."""
    if outcome.busy:
        return Plan(opts.lock_retry, "another backup is running")
    if outcome.error is not None:
        return Plan(backoff_delay(stops, opts.retry_base, opts.retry_cap), "retry after an error")
    s = outcome.summary
    assert s is not None
    if s.paused_by_policy:
        return Plan(opts.rescan_interval, "periodic rescan", paused=True)
    if s.stopped_reason:
        return Plan(backoff_delay(stops, opts.retry_base, opts.retry_cap), "retry after a stop")
    plan = Plan(opts.rescan_interval, "periodic rescan")
    if s.files_waiting:
        # Files still being written, or left when the pass was stopped: look again soon.
        plan = Plan(min(plan.delay, opts.condition_interval), "files waiting")
    if next_retry_at is not None and next_retry_at - now < plan.delay:
        # The floor keeps a retry time the engine did not act on from becoming a pass every tick.
        plan = Plan(min(plan.delay, max(RETRY_FLOOR, next_retry_at - now)), "a failed file's retry time")
    return plan


def earliest_retry(state_db: os.PathLike[str]) -> float | None:
    """The earliest ``next_retry_at`` of a failed file (wall-clock), read without taking any lock."""
    try:
        conn = sqlite3.connect(f"file:{os.fspath(state_db)}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT MIN(next_retry_at) FROM files WHERE state='failed'").fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return float(row[0]) if row and row[0] is not None else None


def lock_busy(state_db: os.PathLike[str]) -> bool:
    """Whether another process holds the pass lock (see ``agent/lock.py``); checked before a pass so
    a parallel ``camroll backup`` is waited for quietly instead of reported as an error."""
    path = os.fspath(state_db) + ".lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may have just taken
    return False


def _config_sig(path: os.PathLike[str]) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def pass_line(s: Summary) -> str:
    """One line for a pass in the foreground: the headline and, when files were handled, how."""
    done = []
    if s.files_uploaded:
        done.append(f"{s.files_uploaded:,} uploaded ({s.bytes_sent / 1e6:,.1f} MB in {s.duration_s:.1f} s)")
    if s.files_already_on_server:
        done.append(f"{s.files_already_on_server:,} already on the server")
    if s.files_skipped:
        done.append(f"{s.files_skipped:,} skipped")
    if s.files_failed:
        done.append(f"{s.files_failed:,} failed")
    return s.headline + (f" [{', '.join(done)}]" if done else "")


class Daemon:
    """The loop.  ``say`` prints one line per pass outcome (None = quiet); ``probes`` and
    ``transport`` replace this machine's conditions and the network (tests)."""

    def __init__(self, paths: AgentPaths, options: DaemonOptions | None = None, *, say: Say | None = None,
                 probes: Probes | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.paths = paths
        self.opts = options or DaemonOptions()
        self.say = say
        self.probes = probes
        self.transport = transport
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self.batcher = ChangeBatcher(quiet=self.opts.debounce, stable=self.opts.stable,
                                     max_wait=self.opts.max_wait)
        self.heartbeats = HeartbeatSender(paths, self.opts.heartbeat_interval, transport)
        self.cfg: AgentConfig | None = None
        self.config_error: str | None = None
        self._cfg_sig: tuple[int, int, int] | None = None
        self._cfg_seen: tuple[int, int, int] | None = None
        self._job: threading.Thread | None = None
        self._job_result: PassOutcome | None = None
        self._pass_stop: threading.Event | None = None
        self._hb_thread: threading.Thread | None = None
        self._next_pass: float = 0.0
        self._next_why = "start"
        self._run_now: str | None = "start"
        self._next_heartbeat: float | None = None
        self._paused_reason: str | None = None
        self._next_condition_check: float | None = None
        self._stops = 0
        self._last_line: str | None = None
        self._watcher: FolderWatcher | None = None
        self._blocked_hint: str | None = None
        self.signalled: str | None = None  # set by a signal handler
        self.passes = 0

    # --- control ------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop after the current pass has stopped (safe from a signal handler)."""
        self.stopping.set()
        if self._pass_stop is not None:
            self._pass_stop.set()
        self._wake.set()

    def _print(self, line: str, *, again: bool = False) -> None:
        """Say ``line`` with the time, unless it only repeats the previous line (a pause re-checked
        every minute is one line, not one a minute); ``again`` says it anyway."""
        if self.say is not None and (again or line != self._last_line):
            self.say(f"{time.strftime('%H:%M:%S')} {line}")
        self._last_line = line

    # --- config -------------------------------------------------------------------------------------
    def _reload_config(self) -> bool:
        """Re-read the config if the file changed; True when it did (and was valid)."""
        from camroll.agent.errors import ConfigError

        sig = _config_sig(self.paths.config_file)
        if sig == self._cfg_sig and self.cfg is not None:
            return False
        if self.cfg is not None and sig != self._cfg_seen:
            # Changed since the last look: read it once it holds still, so a file caught half-written
            # (an editor that truncates, then writes) is never taken for the new settings.
            self._cfg_seen = sig
            return False
        self._cfg_sig = sig
        try:
            cfg = load_config(self.paths.config_file)
        except ConfigError as exc:
            if str(exc) != self.config_error and self.cfg is not None:
                logger.info("config not reloaded: %s", exc)
                self._print(f"{exc} (still using the settings read before)")
            self.config_error = str(exc)
            return False
        old, self.cfg, self.config_error = self.cfg, cfg, None
        if old is not None:
            logger.info("config reloaded from %s", self.paths.config_file)
            if self._pass_stop is not None and (
                not cfg.policy.enabled or cfg.server != old.server or set(cfg.folders) < set(old.folders)
            ):
                # Switched off, logged in elsewhere or a folder dropped: the running pass no longer
                # does what the person wants.  Stop it; the next pass follows the new config.
                logger.info("stopping the current pass: the config changed")
                self._pass_stop.set()
        if self._watcher is not None:
            self._watcher.set_folders(cfg.folders)
        return True

    def _cannot_run(self) -> str | None:
        if self.cfg is None:
            return self.config_error or "The config could not be read."
        if self.cfg.server is None:
            return "Not logged in. Run: camroll login URL --user NAME"
        if not self.cfg.folders:
            return "No folders to back up. Run: camroll folder add PATH"
        return None

    # --- the loop -----------------------------------------------------------------------------------
    def run(self) -> None:
        """Run until :meth:`request_stop`."""
        self._reload_config()
        ignore = {str(self.paths.log_dir), str(self.paths.state_db.parent), str(self.paths.config_file.parent)}
        self._watcher = FolderWatcher(self._on_change, ignore=ignore)
        try:
            if self.cfg is not None:
                failed = self._watcher.set_folders(self.cfg.folders)
                for folder in failed:
                    logger.warning("not watching %s (missing or not a folder); the periodic rescan covers it",
                                   folder)
            while not self.stopping.is_set():
                if self.signalled:
                    logger.info("received %s; stopping", self.signalled)
                    break
                self._step(time.monotonic())
                busy = self._job is not None or self.batcher.pending
                self._wake.wait(self.opts.tick if busy else min(1.0, self.opts.tick * 2))
                self._wake.clear()
        finally:
            self.request_stop()
            if self._job is not None:
                self._job.join(timeout=60)
            self._watcher.close()

    def _on_change(self, path: str, is_directory: bool) -> None:
        self.batcher.note(path, is_directory=is_directory)

    def _step(self, now: float) -> None:
        if self._reload_config():
            self._run_now = self._run_now or "settings changed"
        if self._job is not None:
            if self._job.is_alive():
                self._maybe_heartbeat(now, running=True)
                return
            self._job.join()
            self._job = self._pass_stop = None
            if self._job_result is not None:
                self._after_pass(self._job_result, now)
        why = self._due(now)
        if why is not None:
            self._start_pass(why, check_first=why == CONDITION_CHECK)
        else:
            self._maybe_heartbeat(now, running=False)

    def _due(self, now: float) -> str | None:
        """Why a pass should start now, or None."""
        hint = self._cannot_run()
        if hint is not None:
            if hint != self._blocked_hint:
                logger.info("waiting: %s", hint)
                self._print(f"Waiting: {hint}")
            self._blocked_hint = hint
            return None
        self._blocked_hint = None
        if self._run_now is not None:
            why, self._run_now = self._run_now, None
            return why
        if self.batcher.ready():
            n = len(self.batcher.take())
            return f"{n} change{'s' if n != 1 else ''} in the folders"
        if now >= self._next_pass:
            return self._next_why
        if self._paused_reason is not None and self._next_condition_check is not None \
                and now >= self._next_condition_check:
            self._next_condition_check = now + self.opts.condition_interval
            return CONDITION_CHECK
        return None

    def _conditions_changed(self) -> bool:
        """Re-evaluate the policy without a pass: is the verdict different from the pause's now?"""
        from camroll.agent.settings.conditions import Probes
        from camroll.agent.settings.policy import evaluate

        assert self.cfg is not None
        try:
            verdict = evaluate(self.cfg.policy, (self.probes or Probes()).all(), datetime.now())
        except Exception as exc:  # a broken probe must not stop the loop; the pass re-evaluates anyway
            logger.warning("condition check failed: %s", exc)
            return True
        return not (verdict.blocked and verdict.reason == self._paused_reason)

    def _start_pass(self, why: str, *, check_first: bool = False) -> None:
        """Run a pass on the worker thread; with ``check_first``, only if the policy's verdict changed
        (probes run programs with timeouts: not on the loop's thread, which must answer signals)."""
        assert self.cfg is not None
        cfg = self.cfg
        if lock_busy(self.paths.state_db):
            self._after_pass(PassOutcome(busy=True), time.monotonic())
            return
        # run_backup sets its stop event when the pass ends, so each pass gets its own.
        stop = threading.Event()
        if self.stopping.is_set():
            return
        self._pass_stop = stop
        self._job_result = None
        logger.info("pass starting: %s", why)

        def job() -> None:
            if check_first and not self._conditions_changed():
                self._wake.set()
                return
            result = self._run_pass(cfg, stop)
            self._job_result = result
            self._send_heartbeat(cfg, running=False, error=result.error)
            self._wake.set()

        self._job = threading.Thread(target=job, name="camroll-pass", daemon=True)
        self._job.start()

    def _run_pass(self, cfg: AgentConfig, stop: threading.Event) -> PassOutcome:
        from camroll.agent.backup.run import run_backup

        try:
            # The loop sends the pass's heartbeat itself (with running/error set), so not run_backup.
            return PassOutcome(run_backup(self.paths, cfg, stop=stop, probes=self.probes, transport=self.transport,
                                          report=False))
        except AgentError as exc:
            if lock_busy(self.paths.state_db):
                return PassOutcome(busy=True)
            return PassOutcome(error=str(exc))
        except Exception as exc:  # the loop outlives any one pass; the log has the traceback
            logger.exception("backup pass failed")
            return PassOutcome(error=f"the backup pass failed ({type(exc).__name__}: {exc}); see the agent log")

    def _after_pass(self, outcome: PassOutcome, now: float) -> None:
        self._pass_stop = None
        self.passes += 1
        s = outcome.summary
        stopped = outcome.error is not None or (s is not None and bool(s.stopped_reason) and not s.paused_by_policy)
        self._stops = self._stops + 1 if stopped else 0
        plan = plan_after(outcome, self._stops, self.opts, now=time.time(),
                          next_retry_at=earliest_retry(self.paths.state_db))
        self._next_pass, self._next_why = now + plan.delay, plan.why
        if plan.paused and s is not None:
            self._paused_reason = s.stopped_reason
            self._next_condition_check = now + self.opts.condition_interval
        else:
            self._paused_reason = self._next_condition_check = None
        if outcome.busy:
            logger.info("another camroll backup is running; trying again in %.0f s", plan.delay)
        elif outcome.error is not None:
            logger.info("pass did not run: %s (next try in %.0f s)", outcome.error, plan.delay)
            self._print(outcome.error)
        elif s is not None:
            if s.stopped_reason and not s.paused_by_policy:
                logger.info("next try in %.0f s", plan.delay)
            line = pass_line(s)
            off = switched_off(self.cfg) if self.cfg is not None else None
            if off is not None and not s.stopped_reason:
                line = off  # nothing to do this time, but "Everything is backed up" would mislead
            self._print(line, again=bool(s.files_uploaded or s.files_failed or s.files_skipped))
        if self._watcher is not None and self.cfg is not None:
            # A folder that was missing (an unplugged card) is watched once it is back.
            self._watcher.set_folders(self.cfg.folders)
        if self._next_heartbeat is None:
            self._next_heartbeat = now + self.heartbeats.interval

    # --- heartbeats ---------------------------------------------------------------------------------
    def _maybe_heartbeat(self, now: float, *, running: bool) -> None:
        if self._next_heartbeat is None or now < self._next_heartbeat or self.cfg is None \
                or self.cfg.server is None:
            return
        if self._hb_thread is not None and self._hb_thread.is_alive():
            return
        self._next_heartbeat = now + self.heartbeats.interval
        cfg = self.cfg
        self._hb_thread = threading.Thread(target=self._send_heartbeat, args=(cfg,),
                                           kwargs={"running": running}, name="camroll-heartbeat", daemon=True)
        self._hb_thread.start()

    def _send_heartbeat(self, cfg: AgentConfig, *, running: bool, error: str | None = None) -> None:
        if cfg.server is None:
            return
        try:
            body = build_heartbeat(self.paths, cfg, running=running, error=error or self.config_error)
        except Exception as exc:  # reading local state must not stop the loop
            logger.warning("heartbeat not built: %s", exc)
            return
        try:
            self.heartbeats.send(cfg, body)
        except Exception as exc:  # never let a heartbeat take the loop's worker thread down
            logger.warning("heartbeat not sent: %s", exc)
        self._next_heartbeat = time.monotonic() + self.heartbeats.interval


@contextlib.contextmanager
def stop_on_signals(daemon: Daemon) -> Iterator[None]:
    """SIGTERM and SIGINT ask ``daemon`` to stop (unfinished uploads stay resumable); the previous
    handlers come back afterwards.  Only the main thread can install handlers; elsewhere this does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if daemon.signalled:
            # Asked twice (Ctrl-C again while the pass winds down): stop waiting for it.
            raise KeyboardInterrupt
        # Only a flag: taking an Event's lock here could deadlock with the loop holding it.  The
        # loop's wait times out within a second and stops the pass.
        daemon.signalled = signal.Signals(signum).name

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
