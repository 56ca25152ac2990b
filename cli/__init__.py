"""The ``geoseg`` command line: a click group, one small module per command.

Each command parses its options, calls one library function and reports. Errors from
the library (``GeosegError``) become one line on stderr and exit status 1; Ctrl-C exits
with 130. Torch is imported only inside the commands that need it, so ``--help`` is instant.
"""

from __future__ import annotations

import sys

import click

from geoseg import __version__
from geoseg.errors import GeosegError, Interrupted


def _warning_printer():
    """A ``warnings.showwarning`` that prints each distinct message once, as one line."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if str(message) not in seen:
            seen.add(str(message))
            click.echo(f"Warning: {message}", err=True)

    return show


class GeosegGroup(click.Group):
    def invoke(self, ctx: click.Context):
        import warnings

        from geoseg.errors import GeosegWarning

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", GeosegWarning)
                warnings.showwarning = _warning_printer()
                return super().invoke(ctx)
        except Interrupted as exc:
            click.echo(f"Interrupted: {exc}", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("Interrupted; no output was written.", err=True)
            sys.exit(130)
        except GeosegError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=GeosegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geoseg")
def main() -> None:
    """Roof polygons from satellite and aerial scenes with a U-Net.

    \b
    geoseg demo                                      # the whole job on a synthetic town
    geoseg train DATA_DIR --out runs/roofs           # learn roof masks from labelled tiles
    geoseg predict scene.tif --model runs/roofs/model.pt --out roofs.geojson
    geoseg evaluate --pred roofs.geojson --truth truth.gpkg
    geoseg export-onnx runs/roofs/model.pt --out roofs.onnx   # for QGIS's Deepness plugin
    """


from .cv import cv  # noqa: E402
from .demo import demo  # noqa: E402
from .evaluate import evaluate  # noqa: E402
from .export_onnx import export_onnx  # noqa: E402
from .predict import predict  # noqa: E402
from .synth import synth  # noqa: E402
from .train import train  # noqa: E402

for command in (demo, synth, train, predict, evaluate, cv, export_onnx):
    main.add_command(command)
