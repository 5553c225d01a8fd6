"""`musicdb serve` and `musicdb user add|list|remove`: thin; the work is in musicdb.serve."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from musicdb.cli.app import DEFAULT_DB, DbPath, app, err, out, user_errors

UsersFile = Annotated[Path | None, typer.Option(
    "--users", envvar="MUSICDB_USERS", dir_okay=False,
    help="The users file (env MUSICDB_USERS; default ~/.config/musicdb/users.json).")]

user_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
app.add_typer(user_app, name="user")


@user_app.callback()
def user() -> None:
    """Who may use `musicdb serve`: add, list and remove users (name, password, API key).

    Users live in a file of their own, never in the database, readable by its owner only.
    """


def _users_file(users: Path | None) -> Path:
    from musicdb.serve.users import default_path

    return users if users is not None else default_path()


@app.command()
def serve(
    db: DbPath = DEFAULT_DB,
    host: Annotated[str, typer.Option(
        help="Address to listen on. Anything but loopback (127.0.0.1, ::1, localhost) needs a "
             "user (musicdb user add).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535,
                                      help="TCP port (0: any free one).")] = 4533,
    users: UsersFile = None,
    reload_seconds: Annotated[float, typer.Option(
        min=1.0, help="Reload a database that changed at most this often, in seconds (a big "
                      "library's copy also waits twice as long as it holds the file).")] = 5.0,
    playlists: Annotated[Path | None, typer.Option(
        exists=True, file_okay=False,
        help="Folder whose .m3u/.m3u8 files are the players' playlists (default: the "
             "database's folder).")] = None,
    workers: Annotated[int, typer.Option(
        min=1, max=64,
        help="Server processes on the one port, each with its own copy of the library in "
             "memory (N times the memory): one answers on one core at a time, so N answer "
             "more requests a second on N cores.")] = 1,
) -> None:
    """Serve the library to Subsonic players (OpenSubsonic API under /rest/) and a web explorer
    at /. Read-only: it never writes the database, and keeps answering while `musicdb ingest`
    runs (data as of the last batch, within a few seconds). Ctrl-C stops it."""
    from musicdb.serve.app import ServeConfig
    from musicdb.serve.server import Started
    from musicdb.serve.server import serve as run_server

    def announce(started: Started) -> None:
        players = (f"players: {started.url} as {', '.join(started.users)}" if started.users
                   else "players: add a user first (musicdb user add NAME)")
        err.print(f"serving {escape(db.name)} ({started.songs:,} songs) at {started.url} — "
                  f"{escape(players)}; explorer: {started.url}/", soft_wrap=True,
                  highlight=False)

    with user_errors():
        run_server(ServeConfig(db=db, users_file=_users_file(users), playlists=playlists,
                               reload_seconds=reload_seconds),
                   host, port, announce, workers=workers)
    err.print("musicdb serve: stopped", highlight=False)


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="The user name players log in with.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input (one line) instead "
                                 "of asking twice.")] = False,
    users: UsersFile = None,
) -> None:
    """Add a user: asks for the password twice (not shown), and prints the user's API key once.

    The password is stored as given in the users file (owner-only, mode 0600): Subsonic's
    token login needs the server to know it. Use a password you use nowhere else."""
    from musicdb.serve import users as users_file

    path = _users_file(users)
    with user_errors():
        users_file.check_name(name)
        users_file.load(path)  # an unsafe file is refused before asking anything
        password = _read_password(password_stdin)
        user = users_file.add(path, name, password)
    err.print(f"added user {escape(name)} to {escape(str(path))}", soft_wrap=True,
              highlight=False)
    err.print("API key (for players with OpenSubsonic API-key login; shown only now):",
              highlight=False)
    out.print(user.api_key, markup=False, highlight=False, soft_wrap=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        err.print("[red]Error:[/red] no terminal to ask for the password on: pass "
                  "--password-stdin and the password on standard input "
                  "(see `musicdb user add --help`)", soft_wrap=True, highlight=False)
        raise typer.Exit(2)
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True,
                        err=True)


@user_app.command("list")
def user_list(
    users: UsersFile = None,
    api_keys: Annotated[bool, typer.Option(
        "--api-keys", help="Show each user's API key after a tab (revoke one with `musicdb "
                           "user remove`).")] = False,
) -> None:
    """The users' names, one a line (passwords are never shown)."""
    from musicdb.serve import users as users_file

    path = _users_file(users)
    with user_errors():
        found = users_file.load(path)
    if not found:
        err.print(f"no users in {escape(str(path))}: add one with `musicdb user add NAME`",
                  soft_wrap=True, highlight=False)
    for name in sorted(found):
        line = f"{name}\t{found[name].api_key}" if api_keys else name
        typer.echo(line)  # plain text: rich would expand the tab


@user_app.command("remove")
def user_remove(
    name: Annotated[str, typer.Argument(help="The user to remove.")],
    users: UsersFile = None,
) -> None:
    """Remove a user: its password and API key stop working at once, also in a running
    server."""
    from musicdb.serve import users as users_file

    path = _users_file(users)
    with user_errors():
        users_file.remove(path, name)
    err.print(f"removed user {escape(name)} from {escape(str(path))}", soft_wrap=True,
              highlight=False)
