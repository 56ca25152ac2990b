"""The ``geoseg`` command line: a click group, one small module per command.

Each command parses its options, calls one library function and reports. Errors from
the library (``GeosegError``) become one line on stderr and exit status 1; Ctrl-C exits
with 130. Torch is imported only inside the commands that need it, so ``--help`` is instant.
"""

from __future__ import annotations

import sys

import click
import cloup

from geoseg import __version__
from geoseg.errors import GeosegError, Interrupted, Terminated, interrupt_exit_code

from .errors import OneLineUsageError, as_flags, flags_of, unexpected, warning_printer


def _raise_terminated(signum, frame):
    raise Terminated()


class GeosegGroup(cloup.Group):
    """The command group: SIGTERM handled as Ctrl-C, warnings said once, every error one line."""
    def invoke(self, ctx: click.Context):
        import signal
        import warnings

        from geoseg.errors import GeosegWarning

        # SIGTERM is handled as Ctrl-C is: the same clean-up, nothing partial left behind
        previous = signal.signal(signal.SIGTERM, _raise_terminated)

        def flags() -> dict[str, str]:  # the command's, known once the group has picked it
            return flags_of(self.commands.get(ctx.invoked_subcommand or ""))

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", GeosegWarning)
                warnings.showwarning = warning_printer(flags)
                return super().invoke(ctx)
        except Interrupted as exc:
            click.echo(f"Interrupted: {as_flags(str(exc), flags())}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            what = "Terminated" if isinstance(exc, Terminated) else "Interrupted"
            click.echo(f"{what}; no output was written.", err=True)
            sys.exit(interrupt_exit_code(exc))
        except GeosegError as exc:
            raise click.ClickException(as_flags(str(exc), flags())) from None
        except click.UsageError as exc:
            raise OneLineUsageError(exc) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # not a user's mistake: one line, and the traceback kept in a log
            raise click.ClickException(unexpected(exc, ctx.invoked_subcommand)) from None
        finally:
            signal.signal(signal.SIGTERM, previous)


HELP = cloup.Context.settings(help_option_names=["-h", "--help"], show_constraints=False,
                               formatter_settings=cloup.HelpFormatter.settings(max_width=100, col1_max_width=30))


@cloup.group(cls=GeosegGroup, context_settings=HELP)
@click.version_option(__version__, prog_name="geoseg")
def main() -> None:
    """Roof polygons from satellite and aerial scenes with a U-Net.

    \b
    geoseg predict scene.tif --out roofs.geojson      # with the starter model shipped with geoseg
    geoseg train DATA_DIR --out runs/roofs            # learn from labelled tiles (images/ + masks/)
    geoseg train --images ortho.tif --labels buildings.gpkg --out runs/ortho   # or from footprints
    geoseg predict scene.tif --model runs/roofs/model.pt --out roofs.geojson
    geoseg evaluate --pred roofs.geojson --truth truth.gpkg
    geoseg demo                                       # the whole job on a synthetic town

    Each command's --help lists its everyday options first.
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

main.section("Everyday commands", predict, train, evaluate, info)
main.section("More", demo, cv, synth, export_onnx, qgis_plugin)
