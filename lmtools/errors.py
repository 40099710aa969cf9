"""The one exception type a user sees: a message and, where we know it, what to do."""


class LmError(Exception):
    """A data or runtime error reported as one line, ``lm-x: error: MESSAGE; HINT``, exit 1."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message
