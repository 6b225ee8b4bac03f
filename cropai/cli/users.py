"""The `cropai users` group: the API's accounts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from cropai.accounts import account_problems, create_user
from cropai.cli.common import console, ready_catalogue
from cropai.db import User
from cropai.errors import InvalidInput

users_app = typer.Typer(help="User accounts of the API.", no_args_is_help=True)


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="The account's email; it is the login name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the account an admin.")] = False,
    role: Annotated[str, typer.Option(help="admin, analyst or viewer (--admin is role admin).")] = "analyst",
    full_name: Annotated[str, typer.Option(help="The person's name.")] = "",
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="CROPAI_NEW_USER_PASSWORD",
            help="Asked for when not given (or set CROPAI_NEW_USER_PASSWORD).",
        ),
    ] = "",
) -> None:
    """Create an API account; `cropai users create you@example.org --admin` makes the first admin."""
    role = "admin" if admin else role
    if problems := account_problems(email, password, role, full_name):
        raise InvalidInput(f"cannot create {email!r}: {'; '.join(problems)}")
    user = create_user(ready_catalogue().sessions, email, password, role, full_name)
    console.print(f"[green]created[/] {user.role.value} {user.email} (id {user.id})", highlight=False)


@users_app.command("list")
def users_list() -> None:
    """The API's accounts with their roles."""
    table = Table("id", "email", "role", "active", "last login")
    with ready_catalogue().sessions() as session:
        for user in session.scalars(select(User).order_by(User.id)):
            table.add_row(
                str(user.id),
                user.email,
                user.role.value,
                "yes" if user.is_active else "no",
                str(user.last_login_at or "-"),
            )
    console.print(table)
