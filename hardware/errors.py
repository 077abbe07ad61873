"""The error type for bad input: the CLI prints its message as one line and exits non-zero.

Every layer raises subclasses of ``SpikeflightError`` for problems the user can fix (a
bad file, an unknown name, a value out of range); their message names what is wrong and
where. Anything else is a bug and keeps its traceback.
"""


class SpikeflightError(Exception):
    """A user-facing error with a one-line message."""
