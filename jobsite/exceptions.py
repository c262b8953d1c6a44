"""What the services raise when they refuse a request (the API turns them into 4xx answers), and how
their messages show user input and lists of ids."""


class Rejected(Exception):
    """The request is invalid. `errors` maps each field to what is wrong with it (400)."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__("; ".join(_lines(errors)))


def _lines(errors, prefix=""):
    """'field: problem' lines, nested fields joined with dots: 'params.azimuth: must be at most 360'."""
    for field, problem in errors.items():
        if isinstance(problem, dict):
            yield from _lines(problem, f"{prefix}{field}.")
        else:
            yield f"{prefix}{field}: {problem}"


class Conflict(Exception):
    """The request is valid but the job's state does not allow it (409)."""


class LimitExceeded(Exception):
    """The caller has reached a configured limit, such as active jobs at once (429)."""


class QuotaExceeded(LimitExceeded):
    """A daily quota that a request would go over (429): `quota` says which, its limit, the usage,
    what the request asks and when it resets."""

    def __init__(self, message, quota):
        self.quota = quota
        self.extra = {"quota": quota}  # what problem details (OGC API) add
        super().__init__(message)


class TooLarge(Exception):
    """An upload over the size limit or the owner's storage quota (413)."""


def quoted(value, limit=60):
    """User input as an error message shows it: quoted, and cut to `limit` characters saying how
    many more there were, so that no answer echoes input at unbounded length."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text) - limit} more characters)"


def id_list(ids, limit=20):
    """Ids as a message lists them: the first `limit`, then how many more."""
    ids = list(ids)
    return ", ".join(map(str, ids[:limit])) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


class LoadError(Exception):
    """Tiles or towns could not be loaded; the message names the file and the problem."""
