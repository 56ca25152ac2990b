"""Run the ``geoseg`` command for a Processing algorithm: its lines into the feedback, its
percentages as progress, and Cancel as SIGTERM (geoseg then removes what it was writing)."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import threading

from qgis.core import QgsProcessingException, QgsSettings

SETTING = "geoseg/executable"
MIN_VERSION = (0, 1)
INSTALL = "pip install geoseg (in the Python environment whose geoseg command QGIS should run)"
PERCENT = re.compile(r"(\d{1,3})%")


def executable() -> str:
    """The geoseg command: the provider's setting, else $GEOSEG_EXECUTABLE, else PATH."""
    for candidate in (QgsSettings().value(SETTING, "", type=str), os.environ.get("GEOSEG_EXECUTABLE", ""),
                      shutil.which("geoseg") or ""):
        if candidate:
            return candidate
    raise QgsProcessingException(f"geoseg was not found: set its path under Settings > Options > Processing >"
                                 f" Providers > geoseg, or {INSTALL}")


def check_version(command: str) -> str:
    """The command's version; a missing or too old geoseg is one clear error with the install line."""
    try:
        out = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=120)
    except OSError as exc:
        raise QgsProcessingException(f"cannot run {command} ({exc}); {INSTALL}") from None
    found = re.search(r"(\d+)\.(\d+)", out.stdout + out.stderr)
    if out.returncode != 0 or not found:
        raise QgsProcessingException(f"{command} is not a working geoseg ({(out.stderr or out.stdout).strip()[:200]});"
                                     f" {INSTALL}")
    if tuple(int(v) for v in found.groups()) < MIN_VERSION:
        raise QgsProcessingException(f"{command} is geoseg {found.group(0)}; this plugin needs"
                                     f" {'.'.join(map(str, MIN_VERSION))} or later: {INSTALL} --upgrade")
    return found.group(0)


def run(args, feedback) -> None:
    """Run ``geoseg ARGS``: every line of its output in the log, percentages as progress;
    Cancel sends SIGTERM and waits. A failure raises with geoseg's own one-line error."""
    command = executable()
    check_version(command)
    feedback.pushCommandInfo(shlex.join([command, *args]))  # as a shell would take it back
    env = {**os.environ, "GEOSEG_PROGRESS": "lines", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([command, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, bufsize=1)
    lines = []

    def read():
        for line in proc.stdout:
            lines.append(line.rstrip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    shown = 0
    while proc.poll() is None or reader.is_alive():
        reader.join(timeout=0.1)
        for line in lines[shown:]:
            match = PERCENT.search(line)
            if match and line.startswith("progress"):
                feedback.setProgress(min(100, int(match.group(1))))
            else:
                feedback.pushInfo(line)
        shown = len(lines)
        if feedback.isCanceled() and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # geoseg stops as on Ctrl-C: nothing partial is left
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise QgsProcessingException("cancelled; geoseg stopped and left no output")
    if proc.returncode != 0:
        said = [line for line in lines if line.startswith("Error:")]
        raise QgsProcessingException(said[-1] if said else f"geoseg failed (exit {proc.returncode})")
