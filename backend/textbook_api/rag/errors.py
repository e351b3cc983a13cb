"""Exception hierarchy of the retrieval library.

Every error raised on purpose by :mod:`textbook_api.rag` derives from :class:`RagError`,
so callers (CLI, API) can map the whole family to one exit code or HTTP status while
still telling the cases apart. No message ever contains a credential.
"""

from __future__ import annotations

from pathlib import PurePath


class RagError(Exception):
    """Base class of every error raised by the retrieval library."""


class CorpusError(RagError):
    """The documentation corpus cannot be read (missing, empty or malformed).

    ``path`` names the offending file or folder.
    """

    def __init__(self, message: str, path: PurePath | str | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class EmbedderError(RagError):
    """Base class of embedding and chat provider failures."""


class ModelFilesError(EmbedderError):
    """The packaged local model or its tokenizer cannot be found or loaded."""


class EmbedderConnectionError(EmbedderError):
    """The provider could not be reached (DNS, refused connection, timeout...)."""


class EmbedderAuthError(EmbedderError):
    """The provider rejected the credentials (HTTP 401 or 403). Never retried."""

    def __init__(self, message: str, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(message)


class EmbedderRateLimitError(EmbedderError):
    """The provider kept answering HTTP 429 after every retry."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class EmbedderServerError(EmbedderError):
    """The provider kept answering HTTP 5xx after every retry."""

    def __init__(self, message: str, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(message)


class EmbedderRequestError(EmbedderError):
    """The provider refused the request (other 4xx) or answered something unusable."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class StoreError(RagError):
    """The vector store cannot be used as asked (e.g. the collection does not exist)."""


class IndexMismatchError(StoreError):
    """The collection was built with another embedding model or dimension."""


class MassDeleteError(RagError):
    """A sync would delete more of the index than allowed; nothing was changed."""

    def __init__(self, message: str, to_delete: int, existing: int) -> None:
        self.to_delete = to_delete
        self.existing = existing
        super().__init__(message)
