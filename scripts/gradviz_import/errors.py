"""What the exporter tells its caller: failures with a clear message, and progress lines."""
import sys


class ImportFailure(Exception):
    """A user-facing error: the message says what is wrong with the source or the options."""


def progress(msg):
    """One progress line on stderr (the gradviz binary shows it as it comes)."""
    print(f"progress: {msg}", file=sys.stderr, flush=True)
