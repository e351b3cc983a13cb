"""`POST /api/v1/query`: passages from the indexed textbook and an answer, labelled how it was made.

The question is stripped; an empty one, one over `MAX_QUESTION_CHARS` (1,000) characters or a
`top_k` outside 1..20 is refused with 422. 503 `{"detail": ...}` names the cause when there is
no index, it was built with another model, the store is being indexed (with `Retry-After`) or
the embedder is unavailable. The answer is generative (Cohere chat) when `COHERE_API_KEY` is
set and the chat answers; otherwise extractive from the top passages.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field, StringConstraints

from textbook_api.api.errors import answers
from textbook_api.config import Settings, get_settings
from textbook_api.services.retrieval import (
    MAX_QUESTION_CHARS,
    MAX_TOP_K,
    RetrievalUnavailable,
    run_query,
)

router = APIRouter(prefix="/api/v1", tags=["query"])

Question = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION_CHARS)
]


class QueryRequest(BaseModel):
    question: Question
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, strict=True)


class PassageOut(BaseModel):
    title: str
    url: str
    breadcrumb: str
    score: float
    text: str


class QueryResponse(BaseModel):
    question: str
    answer: str
    answer_mode: Literal["extractive", "generative"]
    model: str
    passages: list[PassageOut]


@router.post("/query", response_model=QueryResponse, responses=answers(400, 422, 503))
def query(
    body: QueryRequest, settings: Annotated[Settings, Depends(get_settings)]
) -> QueryResponse:
    """Answer a question over the textbook, citing the passages it used."""
    try:
        result = run_query(settings, body.question, body.top_k)
    except RetrievalUnavailable as error:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        raise HTTPException(status_code=503, detail=error.detail, headers=headers) from None
    return QueryResponse(
        question=result.question,
        answer=result.answer,
        answer_mode=result.answer_mode,
        model=result.model,
        passages=[PassageOut(**passage.as_dict()) for passage in result.passages],
    )
