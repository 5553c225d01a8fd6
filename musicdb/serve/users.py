"""The users file: who may call the server, kept outside the database, owner-only.

Subsonic token auth sends md5(password + salt) with a fresh salt per call, so the server must
know each password itself: a hash cannot be kept. The file therefore holds the passwords as
given, plus one API key per user (the OpenSubsonic apiKey extension), and is created mode 0600
in a folder created 0700; a file that group or others can read (or another user owns) is
refused rather than used. Writes go to a new file renamed over the old, so a crash never
leaves half a file.

Location: --users FILE, else $MUSICDB_USERS, else $XDG_CONFIG_HOME/musicdb/users.json
(~/.config/musicdb/users.json).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from musicdb.errors import ServeError

ENV = "MUSICDB_USERS"
FORMAT = 1
MAX_NAME = 64


@dataclass(frozen=True)
class User:
    name: str
    password: str
    api_key: str


def default_path() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "musicdb" / "users.json"


def load(path: Path) -> dict[str, User]:
    """The users in the file, by name; none when there is no file. An unsafe or unreadable
    file is a ServeError (one line)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return {}
    check_private(path, info)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        users = data["users"]
        return {name: User(name, u["password"], u["api_key"]) for name, u in users.items()}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ServeError(f"{path} is not a musicdb users file ({type(exc).__name__}: {exc}); "
                         "move it away and add the users again with `musicdb user add`") from exc


def check_private(path: Path, info: os.stat_result | None = None) -> None:
    info = info or path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ServeError(f"{path} is not a regular file; pass --users a file")
    if info.st_uid != os.getuid():
        raise ServeError(f"{path} belongs to another user (uid {info.st_uid}): the users file "
                         "holds passwords and must be yours alone")
    if info.st_mode & 0o077:
        raise ServeError(f"{path} can be read by others (mode {stat.S_IMODE(info.st_mode):o}): "
                         f"it holds passwords; run `chmod 600 {path}`")


def check_name(name: str) -> str:
    if not name or len(name) > MAX_NAME or name != name.strip():
        raise ServeError(f"a user name is 1 to {MAX_NAME} characters without leading or "
                         f"trailing spaces, not {name!r}")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ServeError(f"the user name {name!r} holds control characters")
    return name


def add(path: Path, name: str, password: str) -> User:
    """Add a user with a new API key; the key is returned, to be shown once."""
    check_name(name)
    if not password:
        raise ServeError("the password is empty")
    users = load(path)
    if name in users:
        raise ServeError(f"user {name!r} exists already in {path}: `musicdb user remove "
                         f"{name}` first to give it a new password")
    user = User(name, password, secrets.token_urlsafe(32))
    _save(path, {**users, name: user})
    return user


def remove(path: Path, name: str) -> None:
    users = load(path)
    if name not in users:
        known = ", ".join(sorted(users)) or "none"
        raise ServeError(f"no user {name!r} in {path} (users: {known})")
    del users[name]
    _save(path, users)


def _save(path: Path, users: dict[str, User]) -> None:
    _private_folder(path.parent)
    body = json.dumps({"format": FORMAT, "users": {
        u.name: {"password": u.password, "api_key": u.api_key} for u in users.values()}},
        ensure_ascii=False, indent=2)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _private_folder(folder: Path) -> None:
    """Create the folder (and missing parents) owner-only; an existing one is left as it is."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(mode=0o700, parents=True)
        folder.chmod(0o700)  # mkdir's mode is cut by the umask
    except OSError as exc:
        raise ServeError(f"cannot create the folder {folder} for the users file: "
                         f"{exc.strerror}") from exc
