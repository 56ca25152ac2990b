"""The ``geoseg`` command line: a click group, one small module per command.

Each command parses its options, calls one library function and reports. Errors from
the library (``GeosegError``) become one line on stderr and exit status 1; Ctrl-C exits
with 130. Torch is imported only inside the commands that need it, so ``--help`` is instant.
"""

from __future__ import annotations

import errno
import os
import sys

import click

from geoseg import __version__
from geoseg.errors import GeosegError, Interrupted, Terminated, first_line, interrupt_exit_code


def _warning_printer():
    """A ``warnings.showwarning`` that prints each distinct message once, as one line."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if str(message) not in seen:
            seen.add(str(message))
            click.echo(f"Warning: {message}", err=True)

    return show


_DISK_ERRORS = {errno.ENOSPC: "no space left on the device; free some space or write to another folder",
                errno.EDQUOT: "disk quota exceeded; free some space or write to another folder",
                errno.EROFS: "the file system is read-only; write to another folder",
                errno.EACCES: "permission denied; write to a folder you may write to"}


# what a full disk says where no errno comes with it: SQLite (GeoPackage writes through GDAL), torch.save
_DISK_TEXTS = ("No space left on device", "database or disk is full", "file write failed")


def _unexpected(exc: BaseException, command: str | None = None) -> str:
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


def _raise_terminated(signum, frame):
    raise Terminated()


class GeosegGroup(click.Group):
    def invoke(self, ctx: click.Context):
        import signal
        import warnings

        from geoseg.errors import GeosegWarning

        # SIGTERM is handled as Ctrl-C is: the same clean-up, nothing partial left behind
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", GeosegWarning)
                warnings.showwarning = _warning_printer()
                return super().invoke(ctx)
        except Interrupted as exc:
            click.echo(f"Interrupted: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            what = "Terminated" if isinstance(exc, Terminated) else "Interrupted"
            click.echo(f"{what}; no output was written.", err=True)
            sys.exit(interrupt_exit_code(exc))
        except GeosegError as exc:
            raise click.ClickException(str(exc)) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # not a user's mistake: one line, and the traceback kept in a log
            raise click.ClickException(_unexpected(exc, ctx.invoked_subcommand)) from None
        finally:
            signal.signal(signal.SIGTERM, previous)


@click.group(cls=GeosegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geoseg")
def main() -> None:
    """Roof polygons from satellite and aerial scenes with a U-Net.

    \b
    geoseg demo                                      # the whole job on a synthetic town
    geoseg train DATA_DIR --out runs/roofs           # learn roof masks from labelled tiles
    geoseg predict scene.tif --out roofs.geojson               # the starter model shipped with geoseg
    geoseg predict scene.tif --model runs/roofs/model.pt --out roofs.geojson
    geoseg info [MODEL]                                         # a model's card
    geoseg qgis-plugin PLUGINS_DIR                              # the Processing provider for QGIS
    geoseg evaluate --pred roofs.geojson --truth truth.gpkg
    geoseg export-onnx runs/roofs/model.pt --out roofs.onnx   # for QGIS's Deepness plugin
    """


from .cv import cv  # noqa: E402
from .demo import demo  # noqa: E402
from .evaluate import evaluate  # noqa: E402
from .export_onnx import export_onnx  # noqa: E402
from .info import info  # noqa: E402
from .predict import predict  # noqa: E402
from .qgis_plugin import qgis_plugin  # noqa: E402
from .synth import synth  # noqa: E402
from .train import train  # noqa: E402

for command in (demo, synth, train, predict, evaluate, cv, export_onnx, info, qgis_plugin):
    main.add_command(command)
