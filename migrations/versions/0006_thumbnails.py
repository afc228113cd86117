"""Paper thumbnails from the ML pool (written by app.thumbnails): FSQ tokens of a PDF's first
page, or a placeholder sampled by the diffusion model; the decoded PNG is kept for the site.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # A new table only: no batch mode is needed on SQLite (nothing is altered).
    op.create_table(
        "thumbnails",
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("paper_version", sa.Integer(), nullable=True),
        sa.Column("tokens", sa.LargeBinary(), nullable=True),
        sa.Column("grid_h", sa.Integer(), nullable=True),
        sa.Column("grid_w", sa.Integer(), nullable=True),
        sa.Column("levels", sa.String(64), nullable=True),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column("solver", sa.String(32), nullable=True),
        sa.Column("nfe", sa.Integer(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["arxiv_id"],
            ["papers.arxiv_id"],
            name="fk_thumbnails_arxiv_id_papers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("arxiv_id", name="pk_thumbnails"),
    )


def downgrade() -> None:
    op.drop_table("thumbnails")
