"""Errors that carry their exit code, so every command maps failures the same way.

Exit codes follow the CLI contract: 1 means a check failed (parity, digest, gate),
2 means the input was bad (wrong file, wrong option, unsupported model).
"""

from __future__ import annotations

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


class EdgekitError(Exception):
    """Base error: a message that names the problem and a hint that says what to do."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, hint: str | None = None, details: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class BadInputError(EdgekitError):
    """The user gave something we cannot use (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class CheckFailedError(EdgekitError):
    """A verification ran and failed: parity, digests, accuracy gate (exit 1)."""

    exit_code = EXIT_CHECK_FAILED


class BundleError(BadInputError):
    """The bundle folder is missing, malformed or does not match its schema."""


class IntegrityError(CheckFailedError):
    """A file's digest does not match the manifest: tampering or corruption."""
