"""The one settings object shared by the site, the workers and the CLI."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import field_validator
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
    # Rows per upsert statement; keeps each statement under SQLite's bind-parameter limit.
    import_batch_size: int = 2000
    search_max_results: int = 1000
    search_max_query_chars: int = 10_000

    @field_validator("categories", mode="before")
    @classmethod
    def _split_categories(cls, value: object) -> object:
        if isinstance(value, str):
            return [c.strip() for c in value.replace(" ", ",").split(",") if c.strip()]
        return value

    @property
    def database_url_resolved(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'papershelf.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
