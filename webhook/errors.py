"""Errors a person can act on.

Everything that reads objects or files turns bad input into an `InputError` whose message names the
object and the field, so callers (CLI, webhook, enforcer) can print one line instead of a traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input a person must fix; the message names what is wrong and where."""
