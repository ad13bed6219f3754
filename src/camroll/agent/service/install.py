"""``camroll agent install``: start ``camroll agent`` at login and keep it running, with the platform's
own service manager (a systemd user unit on Linux, a launchd agent on macOS).  Termux has neither, so
it gets the commands to run instead.

Each function takes the platform and the directories as parameters, so tests write into a temporary
directory and put a recording ``systemctl``/``launchctl`` script first on PATH.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from camroll.agent.paths import HOME_ENV

Platform = Literal["systemd", "launchd", "termux", "unsupported"]

UNIT_NAME = "camroll-agent.service"
LAUNCHD_LABEL = "org.camroll.agent"

TERMUX_HINT = (
    "Termux has no systemd or launchd.  To run the agent in the background on Android:\n"
    "  - install the Termux:Boot app, then put this in ~/.termux/boot/camroll-agent:\n"
    "        #!/data/data/com.termux/files/usr/bin/sh\n"
    "        termux-wake-lock\n"
    "        {command}\n"
    "    (make it executable with chmod +x);\n"
    "  - or run a backup every 15 minutes with the Termux:API job scheduler: put 'camroll backup' in a\n"
    "    script ~/bin/camroll-backup (chmod +x) and run:\n"
    "        termux-job-scheduler --job-id 1 --period-ms 900000 --persisted true --script ~/bin/camroll-backup"
)


def detect_platform() -> Platform:
    if os.environ.get("TERMUX_VERSION") or "com.termux" in os.environ.get("PREFIX", ""):
        return "termux"
    if sys.platform == "darwin":
        return "launchd"
    if sys.platform.startswith("linux"):
        return "systemd"
    return "unsupported"


def agent_command() -> list[str]:
    """The command that starts this same camroll as ``camroll agent``: the absolute path of the
    ``camroll`` script when run through it, else this Python with ``-m camroll``."""
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 and os.path.basename(argv0).startswith("camroll") and not argv0.endswith(".py"):
        exe = shutil.which(argv0) if os.sep not in argv0 else argv0
        if exe and os.access(exe, os.X_OK):
            return [os.path.abspath(exe), "agent"]
    return [os.path.abspath(sys.executable), "-m", "camroll", "agent"]


def _systemd_quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "/._-+=:@,%" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(command: list[str], camroll_home: str | None) -> str:
    env = f"Environment={_systemd_quote(f'{HOME_ENV}={camroll_home}')}\n" if camroll_home else ""
    return (
        "[Unit]\n"
        "Description=camroll photo and video backup agent\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={' '.join(_systemd_quote(a) for a in command)}\n"
        f"{env}"
        "Restart=on-failure\n"
        "RestartSec=30\n"
        # SIGTERM stops the pass cleanly; unfinished uploads resume at the next start.
        "TimeoutStopSec=60\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def launchd_plist(command: list[str], camroll_home: str | None) -> bytes:
    job: dict[str, object] = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": command,
        "RunAtLoad": True,
        "KeepAlive": True,
        # The agent writes its own rotating log; launchd's copies of stdout/stderr would only grow.
        "StandardOutPath": "/dev/null",
        "StandardErrorPath": "/dev/null",
        "ProcessType": "Background",
    }
    if camroll_home:
        job["EnvironmentVariables"] = {HOME_ENV: camroll_home}
    return plistlib.dumps(job)


def systemd_user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def launch_agents_dir() -> Path:
    return Path.home() / "Library" / "LaunchAgents"


@dataclass
class Plan:
    """What install or uninstall does: the file, its contents, and the commands to run."""

    platform: Platform
    path: Path | None = None
    content: bytes = b""
    commands: list[list[str]] = field(default_factory=list)
    hint: str = ""


def install_plan(platform: Platform, command: list[str] | None = None, camroll_home: str | None = None,
                 unit_dir: Path | None = None) -> Plan:
    command = command or agent_command()
    if platform == "systemd":
        path = (unit_dir or systemd_user_dir()) / UNIT_NAME
        return Plan(platform, path, systemd_unit(command, camroll_home).encode(),
                    [["systemctl", "--user", "daemon-reload"],
                     ["systemctl", "--user", "enable", "--now", UNIT_NAME]])
    if platform == "launchd":
        path = (unit_dir or launch_agents_dir()) / f"{LAUNCHD_LABEL}.plist"
        return Plan(platform, path, launchd_plist(command, camroll_home),
                    [["launchctl", "load", "-w", str(path)]])
    if platform == "termux":
        return Plan(platform, hint=TERMUX_HINT.format(command=" ".join(command)))
    return Plan(platform, hint=f"camroll cannot install a service on {sys.platform}. "
                               f"Fix: start '{' '.join(command)}' with this system's own start-up mechanism.")


def uninstall_plan(platform: Platform, unit_dir: Path | None = None) -> Plan:
    if platform == "systemd":
        path = (unit_dir or systemd_user_dir()) / UNIT_NAME
        return Plan(platform, path, commands=[["systemctl", "--user", "disable", "--now", UNIT_NAME],
                                              ["systemctl", "--user", "daemon-reload"]])
    if platform == "launchd":
        path = (unit_dir or launch_agents_dir()) / f"{LAUNCHD_LABEL}.plist"
        return Plan(platform, path, commands=[["launchctl", "unload", "-w", str(path)]])
    return Plan(platform, hint="Nothing to uninstall: camroll installs no service on this platform.")


@dataclass
class CommandResult:
    command: list[str]
    ok: bool
    output: str


def run_commands(commands: list[list[str]]) -> list[CommandResult]:
    """Run each command until one fails (missing program, non-zero exit); what happened to each."""
    done: list[CommandResult] = []
    for cmd in commands:
        if shutil.which(cmd[0]) is None:
            done.append(CommandResult(cmd, False, f"{cmd[0]} is not installed"))
            break
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            done.append(CommandResult(cmd, False, str(exc)))
            break
        out = (proc.stderr or proc.stdout).strip()
        done.append(CommandResult(cmd, proc.returncode == 0, out))
        if proc.returncode != 0:
            break
    return done


def write_service_file(plan: Plan) -> None:
    assert plan.path is not None
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan.path.with_name(plan.path.name + ".tmp")
    tmp.write_bytes(plan.content)
    os.replace(tmp, plan.path)


def installed_state(platform: Platform, unit_dir: Path | None = None) -> dict[str, object]:
    """Whether the service file exists and what the service manager says of it (``None`` = could not ask)."""
    plan = install_plan(platform, command=["camroll", "agent"], unit_dir=unit_dir)
    state: dict[str, object] = {"platform": platform, "path": str(plan.path) if plan.path else None,
                                "installed": bool(plan.path and plan.path.exists()),
                                "enabled": None, "active": None}
    if platform == "systemd" and shutil.which("systemctl"):
        for key, verb in (("enabled", "is-enabled"), ("active", "is-active")):
            try:
                proc = subprocess.run(["systemctl", "--user", verb, UNIT_NAME], capture_output=True, text=True,
                                      timeout=10, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired):
                continue
            word = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""
            state[key] = word or None
    elif platform == "launchd" and shutil.which("launchctl"):
        try:
            proc = subprocess.run(["launchctl", "list", LAUNCHD_LABEL], capture_output=True, text=True,
                                  timeout=10, stdin=subprocess.DEVNULL)
            state["active"] = "active" if proc.returncode == 0 else "inactive"
        except (OSError, subprocess.TimeoutExpired):
            pass
    return state
