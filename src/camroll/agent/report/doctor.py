"""``camroll doctor``: every known reason a backup stops, checked and named with its fix.

:func:`run_doctor` returns a :class:`DoctorReport` of :class:`Check`s, each ``pass``, ``warn``, ``fail``
or ``skip`` (not checked because something it needs failed first, e.g. the account when the server is
unreachable).  Only ``fail`` makes the report not ok: a warning (battery low, quota at 90 %) is a pause
that clears by itself or a heads-up.  Nothing here writes: the state DB is opened read-only and the
server is only asked ``GET`` questions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shlex
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from camroll.agent.errors import ConfigError
from camroll.agent.paths import AgentPaths, AllInOne
from camroll.agent.report.reach import (
    PROBE_TIMEOUT,
    Finding,
    Reach,
    check_version,
    clock_skew,
    probe_account,
    probe_disk,
    probe_room,
    probe_server,
    quota_headroom,
    server_disk,
)
from camroll.agent.settings.config import AgentConfig, load_config
from camroll.agent.state import lastpass
from camroll.agent.state.cache import (
    META_REBUILT_AT,
    META_REBUILT_KIND,
    META_REBUILT_OLD,
    META_REBUILT_WHY,
    Rebuilt,
    notice_for,
    when_text,
)
from camroll.agent.stops import Stop, StopCode

if TYPE_CHECKING:
    import httpx

    from camroll import wire
    from camroll.agent.settings.conditions import Probes

CheckStatus = Literal["pass", "warn", "fail", "skip"]

STUCK_AFTER_S = 3600.0
# A damaged-and-rebuilt state DB is worth a warning for this long; after that it is history.
REBUILT_WARN_S = 7 * 86400.0
_LEVEL_TO_STATUS: dict[str, CheckStatus] = {"ok": "pass", "warn": "warn", "fail": "fail", "unknown": "skip"}


@dataclass(frozen=True)
class Check:
    name: str
    status: CheckStatus
    message: str
    fix: str = ""


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def get(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {"checks": [asdict(c) for c in self.checks], "ok": self.ok}


def _from(name: str, f: Finding) -> Check:
    return Check(name, _LEVEL_TO_STATUS[f.level], f.sentence, f.fix)


def _split_fix(sentence: str) -> tuple[str, str]:
    """A policy verdict ("Paused: battery 14%, below your 20% minimum. Plug in or ...") as (what, fix):
    the fix is its last sentence."""
    parts = list(re.finditer(r"(?<=[.)]) (?=[A-Z])", sentence))
    if not parts:
        return sentence, ""
    cut = parts[-1]
    return sentence[:cut.start()].strip(), sentence[cut.end():].strip()


# --- local checks -----------------------------------------------------------------------------------------------
def _config(paths: AgentPaths) -> tuple[Check, AgentConfig | None]:
    try:
        cfg = load_config(paths.config_file)
    except ConfigError as exc:
        what, _, fix = str(exc).partition(" Fix: ")
        return Check("config", "fail", what, fix.rstrip(".")), None
    where = paths.config_file if paths.config_file.exists() else f"{paths.config_file} (not created yet)"
    return Check("config", "pass", f"Config {where} is valid."), cfg


def _enabled(paths: AgentPaths, cfg: AgentConfig) -> Check:
    if cfg.policy.enabled:
        return Check("enabled", "pass", "Backup is switched on.")
    from camroll.agent.settings.user_settings import switched_off_at

    off = switched_off_at(paths)
    when = f"; backup was turned off on {when_text(off.timestamp())}" if off else ""
    return Check("enabled", "fail", f"Backup is switched off (enabled = false){when}.",
                 "run camroll settings set enabled true")


def _login(cfg: AgentConfig) -> Check:
    if cfg.server is None:
        return Check("login", "fail", "This device is not logged in to a camroll server.",
                     "run camroll login URL --user NAME")
    s = cfg.server
    return Check("login", "pass", f"Logged in to {s.url} as {s.username or '?'}; this device is "
                                  f"'{s.device_name}'.")


def _folders(cfg: AgentConfig) -> Check:
    if not cfg.folders:
        return Check("folders", "fail", "No folders are chosen for backup.", "run camroll folder add PATH")
    bad: list[str] = []
    fixes: list[str] = []
    for f in cfg.folders:
        if not os.path.exists(f):
            bad.append(f"{f} does not exist")
            fixes.append(f"reconnect or restore {f}, or stop backing it up (camroll folder remove {f})")
        elif not os.path.isdir(f):
            bad.append(f"{f} is not a folder")
            fixes.append(f"run camroll folder remove {f}")
        else:
            try:
                with os.scandir(f) as it:
                    next(it, None)
            except OSError as exc:
                bad.append(f"{f} cannot be read ({exc.strerror or exc})")
                fixes.append(f"give your user read access to {f} (chmod u+rx)")
    if bad:
        return Check("folders", "fail", "; ".join(bad) + ".", "; ".join(fixes))
    n = len(cfg.folders)
    return Check("folders", "pass", f"{n} folder{'' if n == 1 else 's'} present and readable: "
                                    f"{', '.join(cfg.folders)}.")


# --- server checks ----------------------------------------------------------------------------------------------
def _last_stop(paths: AgentPaths) -> Stop | None:
    """What stopped the last pass, from the state DB's last-pass record; None when it ran to the end."""
    if not paths.state_db.exists():
        return None
    try:
        conn = _ro(paths.state_db)
    except sqlite3.Error:
        return None
    try:
        text = conn.execute("SELECT value FROM meta WHERE key=?", (lastpass.META_KEY,)).fetchone()
        old = {k: _meta(conn, k) or None for k in lastpass.OLD_KEYS}
        return lastpass.read_text(text[0] if text else None, old).stop
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _quota_check(user: wire.UserInfo, last_stop: Stop | None) -> Check:
    """The account's headroom; a pass the server stopped for quota fails this check even below 100 %, because
    the next file does not fit (a 20 MB video with 5 MB left)."""
    q = _from("quota", quota_headroom(user))
    if last_stop is not None and last_stop.code is StopCode.QUOTA and q.status != "fail":
        used = q.message.rstrip(".")
        return Check("quota", "fail", f"The last backup stopped because the storage quota is too small for what "
                                      f"is waiting ({used}): {last_stop.what}",
                     f"free space on the server or ask its admin to raise your quota "
                     f"(camroll admin user set {user.username} --quota SIZE); backup resumes by itself")
    return q


def _allinone_down(up: AllInOne, url: str) -> Check:
    """An all-in-one server that is not running: normal between ``camroll up`` runs, so a warning whose fix
    starts the same library (its ``--data``) on the same port."""
    import platformdirs

    # `camroll up`'s default folder needs no --data; any other one does, or the fix would start another library.
    default = Path(platformdirs.user_data_dir("camroll"))
    again = "camroll up" if up.data == default else f"camroll up --data {shlex.quote(str(up.data))}"
    return Check("server", "warn",
                 f"Nothing is serving {url} now: this device backs up with 'camroll up' (library in {up.data}), "
                 "whose server runs only while 'camroll up' does.",
                 f"run {again} for a backup now, or {again} --watch to keep backing up new photos")


def _server_checks(cfg: AgentConfig, timeout: float, transport: httpx.BaseTransport | None,
                   last_stop: Stop | None = None, up: AllInOne | None = None) -> list[Check]:
    names = ("server", "version", "account", "quota", "clock")
    if cfg.server is None:
        return [Check(n, "skip", "Not checked: not logged in.") for n in names]
    s = cfg.server
    reach: Reach = probe_server(s.url, timeout=timeout, transport=transport)
    if up is not None and reach.kind == "refused":
        return [_allinone_down(up, s.url)] + [
            Check(n, "skip", "Not checked: the all-in-one server is not running.") for n in names[1:]]
    out = [_from("server", reach)]
    if reach.info is None:
        return out + [Check(n, "skip", "Not checked: the server could not be reached.") for n in names[1:]]
    compat = check_version(reach.info)
    out.append(_from("version", compat))
    if compat.level == "fail":
        out += [Check(n, "skip", "Not checked: this camroll is not compatible with the server.")
                for n in ("account", "quota")]
    else:
        acct = probe_account(s.url, s.token, timeout=timeout, transport=transport)
        out.append(_from("account", acct))
        if acct.user is None:
            out.append(Check("quota", "skip", "Not checked: the account could not be read."))
        else:
            out.append(_quota_check(acct.user, last_stop))
            room = probe_room(s.url, s.token, timeout=timeout, transport=transport)
            out.append(_from("server_disk", server_disk(room, last_stop)))
    out.append(_from("clock", clock_skew(reach.server_date, reach.local_time)))
    return out


# --- conditions against the policy --------------------------------------------------------------------------------
def _condition_checks(cfg: AgentConfig, probes: Probes, now: dt.datetime) -> list[Check]:
    from camroll.agent.settings.policy import evaluate

    conditions = probes.all()
    # Each rule is judged on its own (policy.evaluate stops at the first blocker), by switching the
    # other rules off in a copy of the policy.
    neutral: dict[str, object] = {"enabled": True, "time_window": None, "only_while_charging": False,
                                  "min_battery": 0, "pause_on_power_saver": False, "wifi_only": False,
                                  "allow_metered": True}
    p = cfg.policy
    rules: list[tuple[str, dict[str, object], str]] = [
        ("battery", {"only_while_charging": p.only_while_charging, "min_battery": p.min_battery},
         conditions.battery.sentence),
        ("power_saver", {"pause_on_power_saver": p.pause_on_power_saver}, conditions.power_saver.sentence),
        ("network", {"wifi_only": p.wifi_only, "allow_metered": p.allow_metered}, conditions.network.sentence),
    ]
    if p.time_window is not None:
        rules.append(("time_window", {"time_window": p.time_window},
                      f"Now ({now:%H:%M}) is inside your backup time window {p.time_window}."))
    out = []
    for name, keep, sentence in rules:
        verdict = evaluate(p.model_copy(update={**neutral, **keep}), conditions, now)
        if verdict.blocked:
            what, fix = _split_fix(verdict.reason)
            out.append(Check(name, "warn", what, fix))
        else:
            out.append(Check(name, "pass", sentence))
    return out


# --- the state DB -----------------------------------------------------------------------------------------------
def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=10)


def _meta(conn: sqlite3.Connection, key: str) -> str:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    except sqlite3.Error:
        return ""
    return str(row[0]) if row else ""


def _state_checks(paths: AgentPaths, now: float, stuck_after_s: float) -> list[Check]:
    path = paths.state_db
    names = ("state_db", "stuck_uploads", "problem_files")
    if not path.exists():
        return [Check("state_db", "pass", f"No state database yet ({path}); the first backup creates it."),
                *[Check(n, "skip", "Not checked: no state database yet.") for n in names[1:]]]
    fix_damaged = ("run camroll backup: camroll moves the damaged file aside and rebuilds it from the folders and "
                   "the server without re-uploading (or run camroll reset-cache)")
    try:
        conn = _ro(path)
    except sqlite3.Error as exc:
        return [Check("state_db", "fail", f"The state database {path} cannot be opened ({exc}).",
                      "check the permissions of the camroll folder"),
                *[Check(n, "skip", "Not checked: the state database cannot be read.") for n in names[1:]]]
    try:
        try:
            rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(10)").fetchall()]
        except sqlite3.DatabaseError as exc:
            rows = [str(exc)]
        if rows != ["ok"]:
            return [Check("state_db", "fail", f"The state database {path} is damaged ({'; '.join(rows)[:300]}).",
                          fix_damaged),
                    *[Check(n, "skip", "Not checked: the state database is damaged.") for n in names[1:]]]
        out = [_rebuilt_check(conn, path, now)]
        out.append(_stuck(conn, now, stuck_after_s))
        out.append(_problems(conn))
        return out
    except sqlite3.Error as exc:
        return [Check("state_db", "fail", f"The state database {path} cannot be read ({exc}).", fix_damaged)]
    finally:
        conn.close()


def _rebuilt_check(conn: sqlite3.Connection, path: Path, now: float) -> Check:
    ok = f"The state database {path} is intact (integrity_check ok)."
    at = _meta(conn, META_REBUILT_AT)
    try:
        info = Rebuilt(float(at), _meta(conn, META_REBUILT_KIND), _meta(conn, META_REBUILT_WHY),
                       _meta(conn, META_REBUILT_OLD)) if at else None
    except ValueError:
        info = None
    if info is None:
        return Check("state_db", "pass", ok)
    if info.kind == "damaged" and now - info.at < REBUILT_WARN_S:
        return Check("state_db", "warn", notice_for(info),
                     "nothing to do now; if it happens again, check this disk's health and that nothing else "
                     "writes to camroll's folder")
    return Check("state_db", "pass", f"{ok} {notice_for(info)}")


def _stuck(conn: sqlite3.Connection, now: float, stuck_after_s: float) -> Check:
    n, oldest = conn.execute(
        "SELECT COUNT(*), MIN(updated_at) FROM files WHERE state='uploading' AND updated_at < ?",
        (now - stuck_after_s,),
    ).fetchone()
    if not n:
        return Check("stuck_uploads", "pass", "No upload has been stuck for long.")
    hours = stuck_after_s / 3600
    return Check("stuck_uploads", "warn",
                 f"{n:,} file{'' if n == 1 else 's'} waiting to upload made no progress for over {hours:g} h "
                 f"(the oldest since {when_text(float(oldest))}).",
                 "run camroll backup (it resumes them); if they stay stuck, look at the server checks above and "
                 "camroll problems")


def _problems(conn: sqlite3.Connection) -> Check:
    # The same counts as 'camroll status' (agent/tally.py): files left out by choice (hidden, trashed,
    # excluded) are not skipped ones, and paths the scan could not read are failures.
    counts = dict(conn.execute(
        "SELECT state, COUNT(*) FROM files WHERE state IN ('failed','skipped') AND NOT (state='skipped' AND code"
        " IN ('excluded', 'hidden', 'trashed')) GROUP BY state").fetchall())
    failed, skipped = int(counts.get("failed", 0)), int(counts.get("skipped", 0))
    unreadable = conn.execute("SELECT value FROM meta WHERE key=?", (lastpass.SCAN_UNREADABLE_KEY,)).fetchone()
    with contextlib.suppress(ValueError, TypeError):
        failed += len(json.loads(unreadable[0])) if unreadable and unreadable[0] else 0
    skipped_text = (f"{skipped:,} file{'' if skipped == 1 else 's'} skipped on purpose (e.g. not a photo or "
                    "video)") if skipped else ""
    if failed:
        also = f"; {skipped_text}" if skipped_text else ""
        return Check("problem_files", "warn", f"{failed:,} file{'' if failed == 1 else 's'} failed to back up{also}.",
                     "see camroll problems for each file's reason and fix; camroll retry --all tries them now")
    if skipped:
        return Check("problem_files", "pass", f"No failed files; {skipped_text} (camroll problems lists them).")
    return Check("problem_files", "pass", "No failed or skipped files.")


# --- all of it --------------------------------------------------------------------------------------------------
def run_doctor(paths: AgentPaths, *, probes: Probes | None = None, timeout: float = PROBE_TIMEOUT,
               transport: httpx.BaseTransport | None = None, clock: Callable[[], float] = time.time,
               stuck_after_s: float = STUCK_AFTER_S, disk_free: Callable[[Path], int] | None = None) -> DoctorReport:
    """Run every check (never raises for what it finds).  ``probes`` reads battery, power saver and network
    (default: this machine's); ``transport`` replaces the network and ``disk_free`` the free-space reading
    (tests); ``clock`` is the time used for stuck uploads and the time window."""
    report = DoctorReport()
    config_check, cfg = _config(paths)
    report.checks.append(config_check)
    if cfg is not None:
        report.checks.append(_enabled(paths, cfg))
        report.checks.append(_login(cfg))
        report.checks.append(_folders(cfg))
        report.checks += _server_checks(cfg, timeout, transport, _last_stop(paths), paths.allinone)
        from camroll.agent.settings.conditions import Probes as DefaultProbes

        report.checks += _condition_checks(cfg, probes or DefaultProbes(),
                                           dt.datetime.fromtimestamp(clock()))
    report.checks += _state_checks(paths, clock(), stuck_after_s)
    report.checks.append(_from("disk", probe_disk(paths.state_db.parent, disk_free)))
    return report


def summary_line(report: DoctorReport) -> str:
    fails = sum(c.status == "fail" for c in report.checks)
    warns = sum(c.status == "warn" for c in report.checks)
    if not fails and not warns:
        return "Everything checks out."
    parts = []
    if fails:
        parts.append(f"{fails} problem{'' if fails == 1 else 's'} to fix")
    if warns:
        parts.append(f"{warns} warning{'' if warns == 1 else 's'}")
    return ", ".join(parts) + "."
