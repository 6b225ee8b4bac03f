"""The ``cropai`` command line: the application layer above the core, one module per
command group. Each command is a thin shell over the core modules; a domain error becomes
one red line and exit status 2."""

from __future__ import annotations

import logging
import sys

import typer
from rich.logging import RichHandler

from cropai.cli import analyses, assess, catalogue, models, scenes, stack, users
from cropai.cli.common import errors
from cropai.errors import CropAIError

app = typer.Typer(
    help="Crop AI: satellite crop-type mapping.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# `cropai --help` lists the commands in this order, then the groups.
for command in (
    scenes.synth,
    scenes.ingest,
    analyses.analyze,
    analyses.demo,
    models.train,
    stack.api,
    stack.serve,
    stack.up,
    catalogue.check,
):
    app.command()(command)
app.add_typer(catalogue.db_app, name="db")
app.add_typer(users.users_app, name="users")
app.add_typer(catalogue.store_app, name="store")
app.add_typer(models.models_app, name="models")
app.add_typer(assess.assess_app, name="assess")


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[RichHandler(console=errors)])
    logging.getLogger("cropai").setLevel(logging.INFO)
    logging.getLogger("distributed").setLevel(logging.WARNING)  # cluster start/stop chatter
    try:
        app()
    except CropAIError as exc:
        errors.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
