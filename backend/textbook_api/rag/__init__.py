"""Retrieval library: chunk the textbook, embed, index into Qdrant, search and answer.

The library reads no settings or environment: every function takes explicit parameters.
Heavy dependencies (onnxruntime, qdrant-client) load when their module is imported, so
import submodules directly (``from textbook_api.rag.indexer import sync_index``).
"""

from .chunking import CHUNKER_VERSION, Chunk, load_corpus
from .errors import (
    CorpusError,
    EmbedderAuthError,
    EmbedderConnectionError,
    EmbedderError,
    EmbedderRateLimitError,
    EmbedderRequestError,
    EmbedderServerError,
    IndexMismatchError,
    MassDeleteError,
    ModelFilesError,
    RagError,
    StoreError,
)

__all__ = [
    "CHUNKER_VERSION", "Chunk", "load_corpus", "CorpusError", "EmbedderAuthError",
    "EmbedderConnectionError", "EmbedderError", "EmbedderRateLimitError",
    "EmbedderRequestError", "EmbedderServerError", "IndexMismatchError", "MassDeleteError",
    "ModelFilesError", "RagError", "StoreError",
]
