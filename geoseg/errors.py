"""One error family. Each message says what was given, what is allowed and what to do."""

from __future__ import annotations

import contextlib
import warnings


class GeosegError(Exception):
    """Base of every error geoseg raises on purpose; the CLI prints it as one line."""


class InputError(GeosegError, ValueError):
    """A bad argument or input file: wrong value, wrong layout, wrong size."""


class RasterReadError(GeosegError, OSError):
    """A raster that is missing, unreadable or corrupt."""


class OutputExistsError(GeosegError, FileExistsError):
    """An output that exists and was not asked to be overwritten."""


class CheckpointError(GeosegError, ValueError):
    """A file that is not a geoseg checkpoint, or one that does not fit the request."""


class Interrupted(GeosegError):
    """The user pressed Ctrl-C (or the run got SIGTERM); whatever could be saved was saved.
    ``exit_code``: 130 for Ctrl-C, 143 for SIGTERM, as shells report them."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's time-out), raised where Ctrl-C would be so that the
    same clean-up runs: temporary files removed, ``last.pt`` saved, nothing partial left."""


def interrupt_exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return 143 if isinstance(exc, Terminated) else 130


class GeosegWarning(UserWarning):
    """Something the user should know that does not stop the run; the CLI prints it once."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its class name when it has none), at most
    ``limit`` characters: what goes into a one-line error."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


@contextlib.contextmanager
def warnings_said_once():
    """Within the block, a warning raised many times over (one per file, say) is held back
    and said once as the block ends, pointing at the caller of the function using it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for category, message in dict.fromkeys((w.category, str(w.message)) for w in caught):
        warnings.warn(message, category, stacklevel=4)  # here, contextlib, the function, its caller
