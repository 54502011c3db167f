"""The one exception type for bad input: the CLI prints its message without a traceback."""


class AdabertError(Exception):
    """Bad input or a broken contract between stages; the message names the file, key or line."""
