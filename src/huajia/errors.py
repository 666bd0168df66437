"""The one exception type for user errors.

A ``HuajiaError`` message names the bad value and the way out; the CLI prints it on one line and
exits 2, the HTTP API answers 4xx with it. Anything else escaping is a bug.
"""


class HuajiaError(ValueError):
    """A problem with the user's input (prompt, size, path, model, …), not a bug."""


def refuse_unknown(given, known, what: str, plural: str | None = None) -> None:
    """A one-line error naming the first of ``given`` that is not ``known``, and the known."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise HuajiaError(f"unknown {what} '{unknown[0]}'; the {plural or what + 's'} are "
                          f"{', '.join(sorted(known))}")
