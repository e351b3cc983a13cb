"""Query vectors kept between runs, by the sha256 of their text, for one embedding model.

The indexer's recall check asks the same heading queries on every run; embedding them again
was most of the cost of a run that changed nothing. The index itself is still searched on
every run, so a broken index still fails the check: only the queries' vectors are reused.
A changed heading has another hash and is embedded; a file written for another model or
dimension, or one that cannot be read, is ignored (the cache only ever saves time).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .embedders import Embedder
from .errors import RagError

logger = logging.getLogger(__name__)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class QueryVectorCache:
    """``embed_queries`` through a ``.npz`` file in ``folder``, one file per model.

    ``embedded`` and ``reused`` count the queries of the last call.
    """

    def __init__(self, folder: Path, embedder: Embedder) -> None:
        self._embedder = embedder
        model = hashlib.sha256(embedder.model_id.encode("utf-8")).hexdigest()[:16]
        self.path = folder / f"query-vectors-{model}.npz"
        self.embedded = 0
        self.reused = 0

    def _load(self) -> dict[str, npt.NDArray[np.float32]]:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if str(data["model_id"]) != self._embedder.model_id:
                    return {}
                keys, vectors = data["keys"], data["vectors"]
        except FileNotFoundError:
            return {}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            logger.warning("query vector cache %s ignored: %s", self.path, error)
            return {}
        if vectors.ndim != 2 or vectors.shape != (len(keys), self._embedder.dimension):
            return {}
        return {str(key): vector for key, vector in zip(keys, vectors.astype(np.float32))}

    def _save(self, keys: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        """Write atomically (a temp file renamed over the old one): a crash leaves either."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, model_id=np.array(self._embedder.model_id),
                         keys=np.array(keys), vectors=vectors)
            os.replace(temp, self.path)
        except OSError as error:
            Path(temp).unlink(missing_ok=True)
            logger.warning("query vector cache %s not saved: %s", self.path, error)

    def embed_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Vectors of ``texts`` in order, embedding only those not cached; the file then
        holds exactly these texts' vectors (queries no longer asked are dropped)."""
        stored = self._load()
        keys = [_key(text) for text in texts]
        missing = sorted({key: text for key, text in zip(keys, texts)
                          if key not in stored}.items())
        if missing:
            fresh = self._embedder.embed_queries([text for _, text in missing])
            if len(fresh) != len(missing):
                raise RagError("embedder returned a wrong number of vectors")
            stored.update((key, np.asarray(vector, dtype=np.float32))
                          for (key, _), vector in zip(missing, fresh))
        self.embedded, self.reused = len(missing), len(set(keys)) - len(missing)
        vectors = np.zeros((len(texts), self._embedder.dimension), dtype=np.float32)
        for row, key in enumerate(keys):
            vectors[row] = stored[key]
        if missing or len(stored) != len(set(keys)):
            unique = list(dict.fromkeys(keys))
            self._save(unique, np.stack([stored[key] for key in unique]) if unique
                       else np.zeros((0, self._embedder.dimension), dtype=np.float32))
        return vectors
