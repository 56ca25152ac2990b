"""``geoseg info``: a model's card (``checkpoint.describe``)."""

from __future__ import annotations

import click
import cloup


@cloup.command()
@cloup.argument("model", default="starter")
def info(model: str) -> None:
    """Print MODEL's card: bands, pixel size, network, training data and scores.
    MODEL is a model.pt, or 'starter' (the default) for the model shipped with geoseg."""
    from geoseg.models import checkpoint

    path = checkpoint.resolve(model)
    for line in checkpoint.describe(checkpoint.load(path), path):
        click.echo(line)
