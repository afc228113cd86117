"""The JSON API's request and response models (the OpenAPI schemas), by resource."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.artifacts.faqs import Lang
from app.jobs.pictures import Solver
from app.taxonomy import get_taxonomy
from app.web.api.params import PAPER_ID_PATTERN

MAX_SAMPLES = 16
MAX_NFE = 50
MAX_GRID = 64  # rows and columns a token grid may have before the model's own check


def isoformat(value: Any) -> Any:
    """A date or time as ISO 8601 text; anything else as it is."""
    return value.isoformat() if hasattr(value, "isoformat") else value


# --- papers, listings, search, venues, admin ----------------------------------------------


class VersionOut(BaseModel):
    version: int
    submitted_at: str | None


class AnnouncementOut(BaseModel):
    category: str
    day: str
    kind: str


class TldrFields(BaseModel):
    tldr: str | None = Field(
        default=None,
        description="A one-sentence summary: a linked venue paper's, else the ML pool's",
    )
    tldr_model: str | None = Field(
        default=None,
        description="The model version that wrote `tldr`; null when it is the authors' own",
    )
    tldr_paper_version: int | None = Field(
        default=None, description="The paper version a machine-written `tldr` summarises"
    )
    tldr_stale: bool = Field(
        default=False,
        description="`tldr` was written for another version of the paper; the ML pool "
        "writes a new one",
    )


class PaperOut(TldrFields):
    """One paper with its version history and announcements."""

    arxiv_id: str
    version: int | None
    title: str
    abstract: str
    authors: list[str]
    primary_category: str
    categories: list[str]
    classes: list[str] | None
    comments: str | None
    journal_ref: str | None
    doi: str | None
    license: str | None
    first_submitted_at: str | None
    last_updated_at: str | None
    announced_on: str | None
    sort_date: str
    stored_at: str
    changed_at: str
    versions: list[VersionOut]
    announcements: list[AnnouncementOut]
    abs_url: str
    pdf_url: str


class PaperSummary(TldrFields):
    arxiv_id: str
    version: int | None
    title: str
    abstract: str
    authors: list[str]
    primary_category: str
    categories: list[str]
    sort_date: date
    announced_on: date | None
    abs_url: str
    pdf_url: str


class PapersPage(BaseModel):
    papers: list[PaperSummary]
    limit: int
    next_page_token: str | None = Field(
        description="Pass as `page_token` (with the same filters) for the next page; "
        "null on the last page."
    )


class SearchHitOut(BaseModel):
    arxiv_id: str
    title: str
    authors: list[str]
    primary_category: str
    date: str | None
    score: float | None


class SearchOut(BaseModel):
    query: str
    total: int
    total_capped: bool
    # How the results were found: keyword, semantic or hybrid (keyword and semantic fused),
    # and by which engine: the full-text index, or the database's own search.
    mode: Literal["keyword", "semantic", "hybrid"]
    engine: Literal["index", "database"]
    warnings: list[str]
    # Why the search was answered differently than asked (e.g. no embeddings yet).
    notices: list[str]
    hits: list[SearchHitOut]


class StatsOut(BaseModel):
    papers: int
    versions: int
    announcements: int
    days: int
    first_day: str | None
    last_day: str | None
    categories: dict[str, int]
    latest_days: dict[str, dict[str, int]]
    venues: dict[str, dict[str, int]]


class CategoryOut(BaseModel):
    id: str
    name: str
    papers: int


class ArchiveOut(BaseModel):
    id: str
    name: str
    papers: int = Field(description="Sum over its categories (a cross-list counts in each)")
    categories: list[CategoryOut]


class GroupOut(BaseModel):
    id: str
    name: str
    archives: list[ArchiveOut]


class CategoriesOut(BaseModel):
    groups: list[GroupOut]


class DayOut(BaseModel):
    day: date
    papers: int


class DaysOut(BaseModel):
    categories: list[str]
    days: list[DayOut]


class VenueOut(BaseModel):
    name: str
    papers: int
    linked_to_arxiv: int
    imported_at: str


class VenuesOut(BaseModel):
    venues: list[VenueOut]


class VenuePaperOut(BaseModel):
    venue_paper_id: str
    title: str
    authors: list[str]
    abstract: str | None
    status: str | None
    track: str | None
    site: str | None
    keywords: list[str] | None
    tldr: str | None
    arxiv_id: str | None


class VenuePage(BaseModel):
    venue: VenueOut
    papers: list[VenuePaperOut]
    limit: int
    next_page_token: str | None


class ClickIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["pdf", "summary"]


class ClicksOut(BaseModel):
    arxiv_id: str
    pdf: int
    summary: int


class ReindexOut(BaseModel):
    status: Literal["ok"]
    linked_venue_papers: int


class ListingSectionOut(BaseModel):
    key: str
    title: str
    count: int
    papers: list[dict[str, Any]]


class ListingOut(BaseModel):
    expression: str
    day: date | None
    previous_day: date | None
    next_day: date | None
    summary: str
    total: int
    sort: str
    sections: list[ListingSectionOut]


class ForYouMatchOut(BaseModel):
    arxiv_id: str
    score: float = Field(description="cosine similarity to the nearest starred paper")
    nearest_starred: str = Field(description="the id of that starred paper")
    nearest_title: str


class ForYouOut(BaseModel):
    starred: int = Field(description="distinct starred ids sent")
    stars_used: int = Field(description="of those, the ones with an embedding to compare with")
    unknown: list[str] = Field(description="starred ids not stored here (ignored)")
    without_vector: list[str] = Field(description="starred papers without an embedding (ignored)")
    ranked: list[ForYouMatchOut] = Field(description="the ranked papers, best first")
    unranked: int = Field(description="papers without an embedding, in announcement order after")


class ForYouListingOut(ListingOut):
    """`sort=foryou`: sections "foryou" (ranked) and "unranked", or the plain sections when
    nothing could be ranked; `for_you` says how the stars were used."""

    for_you: ForYouOut


# The categories a re-fetch takes (their canonical ids; aliases are taken too).
FETCH_CATEGORIES = sorted(c for c in get_taxonomy().categories if get_taxonomy().canonical(c) == c)


class FetchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str | None = Field(
        default=None,
        max_length=32,
        description="today's list",
        json_schema_extra={"enum": [*FETCH_CATEGORIES, None]},
    )
    ids: list[Annotated[str, Field(json_schema_extra={"pattern": PAPER_ID_PATTERN})]] | None = (
        Field(default=None, min_length=1, max_length=200, description="arXiv ids")
    )


class FetchOut(BaseModel):
    status: Literal["queued", "already-queued"]
    job: str
    job_id: str


# --- FAQ -----------------------------------------------------------------------------------

# "stale": only an older version's answer is stored, and nothing is queued for this one.
FaqStatus = Literal["done", "queued", "running", "stale"]


class FaqOut(BaseModel):
    arxiv_id: str
    version: int = Field(description="The paper version answered (0: unknown)")
    lang: Lang
    model: str
    status: FaqStatus
    position: int | None = Field(
        default=None,
        description="While queued: jobs ahead of it in the LLM queue (running ones too)",
    )
    content: str | None = Field(default=None, description="The answer (Markdown) when done")
    finish_reason: str | None = None
    prompt_hash: str | None = None
    created_at: str | None = None
    cached: bool = False
    stream_url: str
    stale: bool = Field(
        default=False,
        description="The answer was written for an older version of the paper (`version`); "
        "shown until one for `paper_version` is written",
    )
    paper_version: int | None = Field(default=None, description="The paper's current version")


class PromptOut(BaseModel):
    enabled: bool
    model: str
    source: str = Field(description='"built-in" or the prompt file in use')
    system: str | None
    user: str
    digest: str
    placeholders: list[str]
    questions: dict[str, list[str]]
    full_text: bool = Field(description="Whether the prompt gets the paper's full text")
    note: str


# --- ML pool ------------------------------------------------------------------------------


class FsqInfo(BaseModel):
    version: str
    levels: list[int]
    grid: list[int] = Field(description="Token grid [rows, columns]")
    codebook_size: int


class DiffusionInfo(BaseModel):
    version: str
    shape: list[int] = Field(description="[channels, height, width] of a sample")
    solvers: list[str] = Field(description="Solvers available (AMED ones need a predictor)")


class ModelsOut(BaseModel):
    pool: bool = Field(description="Whether a live ML worker is there")
    fsq: FsqInfo | None = None
    diffusion: DiffusionInfo | None = None
    missing: dict[str, str] = Field(default_factory=dict, description="Why a model is absent")
    message: str | None = None


class TokenizeOut(BaseModel):
    model: str = Field(description="The tokenizer's version")
    levels: list[int]
    grid: list[int]
    codebook_size: int
    tokens: list[list[int]] = Field(description="The token grid, row by row")
    input_png_base64: str = Field(description="The image as the tokenizer saw it (64×64)")
    reconstruction_png_base64: str = Field(description="Decoded from the tokens")
    mse: float = Field(description="Mean squared error of the reconstruction (pixels in [0, 1])")
    psnr: float | None = Field(description="PSNR in dB (null when identical)")


class DecodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens: list[
        Annotated[
            list[Annotated[int, Field(ge=0, lt=2**31)]], Field(min_length=1, max_length=MAX_GRID)
        ]
    ] = Field(
        min_length=1, max_length=MAX_GRID, description="A token grid, row by row (e.g. 16×16)"
    )


class DecodeOut(BaseModel):
    model: str
    png_base64: str


class SampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    solver: Solver = "amed_plugin"
    nfe: int = Field(default=5, ge=1, le=MAX_NFE, description="Network evaluations")
    seed: int = Field(default=0, ge=0, lt=2**63, description="First seed (with `count`)")
    count: int = Field(
        default=1, ge=1, le=MAX_SAMPLES, description="Samples: seeds seed…seed+count-1"
    )
    seeds: list[Annotated[int, Field(ge=0, lt=2**63)]] | None = Field(
        default=None, min_length=1, max_length=MAX_SAMPLES, description="Explicit seeds instead"
    )

    @model_validator(mode="after")
    def _seed_range(self) -> SampleIn:
        if self.seeds is None and self.seed + self.count > 2**63:
            raise ValueError("seed + count must stay below 2^63")
        return self

    def seed_list(self) -> list[int]:
        return (
            list(self.seeds)
            if self.seeds is not None
            else list(range(self.seed, self.seed + self.count))
        )


class SampleOut(BaseModel):
    model: str = Field(description="The diffusion model's version")
    solver: str
    nfe: int
    seeds: list[int]
    shape: list[int]
    seconds: float = Field(description="Sampling wall time on the ML pool")
    pngs_base64: list[str]
