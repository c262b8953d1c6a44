"""Reading jobsite's settings from the environment: typed values that name the variable when they
are wrong, the local site's settings file, and its secret key."""

import os
import re
import secrets

from django.core.exceptions import ImproperlyConfigured


def envbool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def envint(name, default, minimum=None):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def envlist(name, default=()):
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def envchoice(name, default, choices):
    value = os.environ.get(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def envinboxes(name, owner="USERNAME", owner_pattern=None):
    """Inbox folders: a comma-separated list of "PATH=USERNAME" (a folder of one user) or "PATH" (a
    folder of one sub-folder per user name), as [(absolute path, user name or None)]. With an
    `owner_pattern`, every entry is PATH=`owner`, the owner matching it (a tile inbox's
    PATH=COLLECTION)."""
    inboxes = []
    owner_required = owner_pattern is not None
    for entry in envlist(name):
        path, _, user = entry.partition("=")
        if owner_required and user.strip() and not re.fullmatch(owner_pattern, user.strip()):
            raise ImproperlyConfigured(f"{name}: {user.strip()!r} is not a {owner.lower()} name")
        if not os.path.isabs(path.strip()) or (_ and not user.strip()) or (owner_required and not user.strip()):
            shapes = f"PATH={owner}" if owner_required else f"PATH or PATH={owner}"
            raise ImproperlyConfigured(f"{name}: {entry!r} is not an absolute {shapes}")
        inboxes.append((os.path.normpath(path.strip()), user.strip() or None))
    return inboxes


HOST_AND_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s/@:\[\]?#]+)(:[0-9]{1,5})?")


def envhosts(name):
    """A comma-separated list of `host` or `host:port` (an IPv6 address in brackets); a URL, a path
    or credentials in an entry stop the process with a message naming it."""
    hosts = envlist(name)
    for host in hosts:
        if not HOST_AND_PORT.fullmatch(host):
            raise ImproperlyConfigured(f"{name}: {host!r} is not a host or host:port (no scheme, path or user)")
    return hosts


def local_secret_key(path):
    """The key of a local (DEBUG) site: random, made on first use and kept in `path` (mode 0600), so
    that the web server and the workers share it and sessions survive a restart."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(draft, path)  # whole or not at all; of two processes starting at once, one wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def read_env_file(path):
    """Settings kept in `path`, one NAME=value a line (# starts a comment), for the names the
    environment does not set: `make run` writes its own there on first start, so that every later
    command, and every restart, runs with the settings it ran with."""
    if not path.is_file():
        return
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ImproperlyConfigured(f"{path}, line {number}: expected NAME=value, not {line!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(name, value)
