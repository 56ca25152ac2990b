"""How the command line reports: a library error as one line with the command's flags, a
usage error as one line, a disk fault as what to do, and anything else as an internal error
with its traceback kept in a log."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable

import click

from geoseg.errors import first_line


class OneLineUsageError(click.UsageError):
    """click's usage error (a missing option, a bad value) on one line, with where help is."""

    def __init__(self, exc: click.UsageError) -> None:
        super().__init__(exc.format_message(), exc.ctx)

    def show(self, file=None) -> None:
        where = f" (see '{self.ctx.command_path} --help')" if self.ctx else ""
        click.echo(f"Error: {self.format_message()}{where}", err=True, file=file)


def flags_of(command: click.Command | None) -> dict[str, str]:
    """The command's options by the names the library gives them (``tile_size``, ``out_dir``)
    and by their own (``no_pretrained``): ``{"tile_size": "--tile-size", ...}``."""
    flags: dict[str, str] = {}
    for param in command.params if command else ():
        if isinstance(param, click.Option):
            for opt in (*param.opts, *param.secondary_opts):
                flags.setdefault(opt.lstrip("-").replace("-", "_"), opt)
            if param.name and param.opts:
                flags.setdefault(param.name, param.opts[0])
    return flags


def as_flags(text: str, flags: dict[str, str]) -> str:
    """A library message with its parameters (`` `tile_size` ``) named as the command's flags."""
    return re.sub(r"`([a-z_][a-z0-9_]*)`", lambda m: flags.get(m[1], "--" + m[1].replace("_", "-")), text)


def warning_printer(flags: Callable[[], dict[str, str]]):
    """A ``warnings.showwarning`` that prints each distinct message once, as one line."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if str(message) not in seen:
            seen.add(str(message))
            click.echo(f"Warning: {as_flags(str(message), flags())}", err=True)

    return show


_DISK_ERRORS = {errno.ENOSPC: "no space left on the device; free some space or write to another folder",
                errno.EDQUOT: "disk quota exceeded; free some space or write to another folder",
                errno.EROFS: "the file system is read-only; write to another folder",
                errno.EACCES: "permission denied; write to a folder you may write to"}


# what a full disk says where no errno comes with it: SQLite (GeoPackage writes through GDAL), torch.save
_DISK_TEXTS = ("No space left on device", "database or disk is full", "file write failed")


def unexpected(exc: BaseException, command: str | None = None) -> str:
    """One line for an error geoseg did not raise on purpose: a disk fault says what to do;
    anything else is a bug, reported with the log that holds its traceback."""
    import tempfile
    import traceback

    cause: BaseException | None = exc
    while cause is not None:
        code = getattr(cause, "errno", None)
        text = str(cause)
        if code in _DISK_ERRORS or any(t in text for t in _DISK_TEXTS):
            what = _DISK_ERRORS.get(code, _DISK_ERRORS[errno.ENOSPC])
            where = getattr(cause, "filename", None)
            left = ("the run folder keeps what was finished (last.pt at the last complete epoch, if one was"
                    " written)" if command in ("train", "cv") else "no output was written")
            return f"{where + ': ' if where else ''}{what}; {left}"
        cause = cause.__cause__ or cause.__context__
    fd, log = tempfile.mkstemp(prefix="geoseg-error-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        traceback.print_exception(exc, file=fh)
    return f"internal error ({type(exc).__name__}: {first_line(exc)}); please report it with the log {log}"
