"""The one settings object shared by the site, the workers and the CLI."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAPERSHELF_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    # Default: an SQLite file inside data_dir (see `database_url_resolved`).
    database_url: str | None = None
    # Unset: `papershelf up` starts an embedded Redis-compatible server.
    redis_url: str | None = None
    categories: Annotated[list[str], NoDecode] = ["cs.AI", "cs.CL", "cs.CV", "cs.LG"]
    admin_token: str | None = None
    # Signs API page tokens; falls back to admin_token. Set one in production.
    secret_key: str | None = None
    # Origins allowed to call /api/ from browsers (CORS); none by default.
    cors_origins: Annotated[list[str], NoDecode] = []
    # Per-client token bucket on /api/ and /search (shared through Redis when configured).
    rate_limit_per_minute: float = 120
    rate_limit_burst: float = 60
    # The site's public address (e.g. https://papers.example.org), used for absolute links in
    # feeds. Unset: taken from the request's Host header, fine locally; deployments must set it.
    public_url: str | None = None
    # Reverse proxies (IPs or CIDRs) whose X-Forwarded-For is believed; none by default, so
    # the client address is the TCP peer's (see app.web.middleware.client_address).
    trusted_proxies: Annotated[list[str], NoDecode] = []
    # Host header values the site answers (`*`: any); empty: localhost names plus the host of
    # public_url. Others get 400, so no link is ever built from a forged Host.
    allowed_hosts: Annotated[list[str], NoDecode] = []
    # Rows per upsert statement; keeps each statement under SQLite's bind-parameter limit.
    import_batch_size: int = 2000
    # An import of at least this share of the papers stored (and at least 10,000 papers, by
    # the files' sizes) builds the database's search index once after the load instead of
    # page by page (app.importer.bulk_load); 0 always defers, a large value never does.
    import_defer_index_share: float = 0.25
    search_max_results: int = 1000
    search_max_query_chars: int = 10_000
    # The database engine ranks at most this many of the newest matches (app/search/base.py).
    search_rank_window: int = 10_000
    # "index": the full-text index beside the database (app/search/fulltext.py), every match
    # ranked; "database": SQLite FTS5 / PostgreSQL tsvector, every word required.
    search_engine: Literal["index", "database"] = "index"
    # Where the full-text index lives; default: beside an SQLite file, else under data_dir.
    search_index_path: Path | None = None

    # arXiv upstreams (base URLs; tests point them at a fake server on 127.0.0.1).
    arxiv_rss_url: str = "https://rss.arxiv.org"
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    arxiv_oai_url: str = "https://oaipmh.arxiv.org/oai"
    # arXiv asks for at most one request every 3 s and one connection at a time, across
    # every machine of a deployment; the limiter in Redis enforces both.
    arxiv_min_interval: float = 3.0
    arxiv_max_connections: int = 1
    # A connection lease outlives a killed holder by at most this long (live holders renew).
    arxiv_lease_ttl: float = 15.0
    arxiv_contact: str = "admin@example.org"
    arxiv_timeout: float = 30.0
    arxiv_max_attempts: int = 5
    arxiv_max_backoff: float = 120.0
    # The fetch pool's arq queue (distinct names let several deployments share a Redis).
    fetch_queue: str = "papershelf:fetch"
    # A job killed with its worker re-runs once this has passed; back-fills are split into
    # jobs of `fetch_pages_per_job` OAI pages so each fits well inside it.
    fetch_job_timeout: int = 600
    fetch_pages_per_job: int = 20
    fetch_retry_delay: float = 60.0  # first delay of arq's own retry; doubles per attempt
    # On-demand look-ups (paper pages for ids the store lacks; see app/jobs/ondemand.py): ids
    # each client, and the whole instance, may have looked up per hour (0 turns look-ups
    # off), and the seconds a look-up waits to gather ids, and to let scheduled fetches go.
    ondemand_per_client_per_hour: int = Field(default=30, ge=0)
    ondemand_global_per_hour: int = Field(default=300, ge=0)
    ondemand_delay: float = Field(default=5.0, gt=0)
    # Days without an announcement besides Fridays and Saturdays (ISO dates, comma list).
    arxiv_holidays: Annotated[list[str], NoDecode] = ["2026-11-26", "2026-12-24", "2026-12-31"]

    # The ML pool (summaries). It runs in its own worker processes; nothing else imports torch.
    ml_queue: str = "papershelf:ml"
    ml_job_timeout: int = 1800
    # Papers per summarisation batch (one executor call; the worker heartbeats between them).
    ml_batch_size: int = 32
    # A checkpoint directory written by `papershelf ml train-summarizer` (default: under data_dir).
    summarizer_path: Path | None = None
    # "auto" picks CUDA when present, else the CPU.
    summarizer_device: str = "auto"
    # Beams for the summaries the pool stores (1 = greedy).
    summarizer_beams: int = 1
    # Paper embeddings (ml.embeddings): the device (unset: the summarizer's), and papers per
    # embedder call, each batch written in one transaction (and one progress step of
    # `reindex --embeddings --inline`).
    embeddings_device: str | None = None
    embeddings_batch_size: int = Field(default=128, ge=1)
    # The vector index (app.vectors), derived from the stored embeddings (default: under
    # data_dir); several web processes on one machine share it read-only.
    vectors_path: Path | None = None

    # Picture models (ML pool II): checkpoint directories written by `papershelf ml train-fsq`
    # and `papershelf ml train-diffusion` (+ `train-amed`); default: under data_dir/models.
    fsq_path: Path | None = None
    # The thumbnails' diffusion model: only one trained on the plots draws placeholders.
    diffusion_path: Path | None = None
    # /lab's diffusion model (a Fashion-MNIST one, like the solver benchmarks'); default
    # data_dir/models/diffusion-fashion; where none is, /lab samples the one above.
    lab_diffusion_path: Path | None = None
    # Placeholder thumbnails for papers without a PDF picture: solver and network evaluations.
    thumbnail_solver: str = "amed_plugin"
    thumbnail_nfe: int = 5
    # Where PDFs for real thumbnails come from, e.g. https://arxiv.org/pdf (fetched through the
    # arXiv limiter); unset: every thumbnail is a generated placeholder.
    thumbnail_pdf_url: str | None = None
    # With PDFs on, a placeholder is made again (its PDF tried again) after this many days:
    # placeholders made while PDFs were off are upgraded on the next back-fill.
    thumbnail_pdf_retry_days: int = Field(default=7, ge=1)
    # Largest image accepted by /api/v1/ml/ uploads, in bytes.
    ml_max_image_bytes: int = 4_000_000

    # An OpenAI-compatible chat-completions endpoint for the FAQ (Kimi/Moonshot, vLLM, Ollama…).
    # Unset base URL: the FAQ button explains that no LLM is configured.
    llm_base_url: str | None = None
    llm_model: str = "moonshot-v1-32k"
    llm_api_key: str | None = None
    llm_timeout: float = 120.0
    llm_max_attempts: int = 4
    llm_max_backoff: float = 60.0
    llm_temperature: float = 0.3
    llm_max_tokens: int = 2048
    # A file holding the FAQ prompt template; unset uses the built-in one shown on /faq/prompt.
    faq_prompt_path: Path | None = None
    llm_queue: str = "papershelf:llm"
    llm_job_timeout: int = 600
    # At most this many FAQ answers are written again per announcement day for new versions
    # of papers whose older version had one (every category together; 0: none).
    faq_regenerate_per_day: int = Field(default=50, ge=0)

    # Saved-search alerts (app.alerts): webhooks to private, loopback, link-local or reserved
    # addresses are refused unless the admin allows them (an intranet receiver, tests).
    alerts_allow_private: bool = False

    @field_validator(
        "categories",
        "arxiv_holidays",
        "cors_origins",
        "trusted_proxies",
        "allowed_hosts",
        mode="before",
    )
    @classmethod
    def _split_lists(cls, value: object) -> object:
        # Lists come from the environment comma- or space-separated.
        if isinstance(value, str):
            return [c.strip() for c in value.replace(" ", ",").split(",") if c.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
        return value

    # public_url: an absolute http(s) address without query, kept without a trailing slash
    # so links are built as public_url + "/path".
    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"public_url {value!r} is not an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError(f"public_url {value!r} must not have a query or fragment")
        return value.strip().rstrip("/")

    @property
    def database_url_resolved(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'papershelf.db').resolve()}"

    @property
    def summarizer_path_resolved(self) -> Path:
        return self.summarizer_path or self.data_dir / "models" / "summarizer"

    @property
    def embeddings_device_resolved(self) -> str:
        return self.embeddings_device or self.summarizer_device

    @property
    def embedder_cache_dir(self) -> Path:
        """Where the embedder keeps what it derives from the packaged model (an exported,
        quantised copy)."""
        return self.data_dir / "models" / "embedder"

    @property
    def fsq_path_resolved(self) -> Path:
        return self.fsq_path or self.data_dir / "models" / "fsq"

    @property
    def diffusion_path_resolved(self) -> Path:
        return self.diffusion_path or self.data_dir / "models" / "diffusion"

    @property
    def lab_diffusion_path_resolved(self) -> Path:
        return self.lab_diffusion_path or self.data_dir / "models" / "diffusion-fashion"


@lru_cache
def get_settings() -> Settings:
    return Settings()
