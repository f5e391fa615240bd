"""Exceptions named and raised like chromadb 1.5.9's, so code written against Chroma catches ours.

Every class derives from :class:`LakevecError` (alias ``ChromaError``) and carries the HTTP status
the server sends for it and the name the HTTP client maps back to the class. Classes that Chroma
raises where a plain ``ValueError`` would also be natural derive from ``ValueError`` too, so both
``except InvalidArgumentError`` and ``except ValueError`` work.
"""

from __future__ import annotations


class LakevecError(Exception):
    """Base class of every error lakevec raises on purpose."""

    def code(self) -> int:
        """HTTP status for this error."""
        return 400

    def message(self) -> str:
        return ", ".join(str(a) for a in self.args)

    @classmethod
    def name(cls) -> str:
        return cls.__name__


ChromaError = LakevecError


class InvalidArgumentError(LakevecError, ValueError):
    """A call's arguments are malformed or do not fit the collection."""


class InvalidDimensionException(InvalidArgumentError):
    """An embedding does not have the collection's dimension."""


class DuplicateIDError(LakevecError, ValueError):
    """The same id appears twice in one batch."""


class IDAlreadyExistsError(LakevecError, ValueError):
    pass


class InvalidUUIDError(LakevecError, ValueError):
    pass


class AuthorizationError(LakevecError):
    def code(self) -> int:
        return 403


class NotFoundError(LakevecError):
    def code(self) -> int:
        return 404


class UniqueConstraintError(LakevecError):
    def code(self) -> int:
        return 409


class InternalError(LakevecError):
    def code(self) -> int:
        return 500


class CommitFailedError(LakevecError):
    """Another writer kept winning the race for the next version; nothing of ours was committed."""

    def code(self) -> int:
        return 409


class StorageError(LakevecError):
    """The storage behind a client failed or cannot give the guarantees lakevec needs."""

    def code(self) -> int:
        return 500


class CorruptFileError(StorageError):
    """A file of a collection cannot be read as what it should be (truncated, overwritten):
    the message names it. Nothing is guessed from it."""


def corrupt(path: str, what: str, exc: BaseException) -> CorruptFileError:
    return CorruptFileError(f"{what} {path} is unreadable (truncated or not written by lakevec): {exc}")


error_types: dict[str, type[LakevecError]] = {
    cls.name(): cls
    for cls in (
        InvalidArgumentError,
        InvalidDimensionException,
        DuplicateIDError,
        IDAlreadyExistsError,
        InvalidUUIDError,
        AuthorizationError,
        NotFoundError,
        UniqueConstraintError,
        InternalError,
        CommitFailedError,
        StorageError,
    )
}

__all__ = ["LakevecError", "ChromaError", "error_types", *error_types]
