"""The one exception type for user errors.

A ``HuajiaError`` message names the bad value and the way out; the CLI prints it on one line and
exits 2, the HTTP API answers 4xx with it. Anything else escaping is a bug.
"""


class HuajiaError(ValueError):
    """A problem with the user's input (prompt, size, path, model, …), not a bug."""
