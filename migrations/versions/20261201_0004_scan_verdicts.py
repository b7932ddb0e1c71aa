"""Scan verdicts by content and signature version, and the rescan's view across tenants.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 17:00:00+00:00

`scan_verdicts` keeps, for every SHA-256 clamd has judged, the latest verdict:
clean or the signature found, the engine and signature database version that
gave it, and when. It holds hashes and verdicts only, no tenant's data (no file
ID, name or tenant), so it is shared by all tenants without row-level security:
an upload whose bytes already have a verdict under clamd's current signatures
reuses it instead of scanning them again.

The rescan workflow asks which processed files, of any tenant, have no verdict
under the current signature version, newest first. That question spans tenants,
so it is asked through one function that runs with its owner's rights (as
0003's reconciliation does) and answers identifiers, hashes and times only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = (
    "ferry_rescan_candidates(integer, timestamptz, text, text, integer, text[])"
)

CANDIDATES = """
CREATE FUNCTION ferry_rescan_candidates(
    current_version integer,
    before_at timestamptz,
    before_tenant text,
    before_file text,
    row_limit integer,
    only_tenants text[] DEFAULT NULL
) RETURNS TABLE (
    tenant_id text, file_id text, processed_at timestamptz, sha256 text, verdict_at timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    -- Processed files whose bytes have no verdict under `current_version`, newest first,
    -- after the cursor (`before_*`, the last one of the previous page) when there is one.
    SELECT f.tenant_id, f.id, f.processed_at, f.sha256, v.scanned_at
    FROM files f
    LEFT JOIN scan_verdicts v ON v.sha256 = f.sha256
    WHERE f.state = 'processed'
      AND f.processed_at IS NOT NULL
      AND (only_tenants IS NULL OR f.tenant_id = ANY (only_tenants))
      AND (v.sha256 IS NULL OR v.signature_version IS DISTINCT FROM current_version)
      AND (before_at IS NULL
           OR (f.processed_at, f.tenant_id, f.id) < (before_at, before_tenant, before_file))
    ORDER BY f.processed_at DESC, f.tenant_id DESC, f.id DESC
    LIMIT row_limit
$$
"""


def upgrade() -> None:
    app_role = str(context.config.attributes.get("app_role", "ferry_app"))
    op.create_table(
        "scan_verdicts",
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("engine", sa.Text(), nullable=False),
        sa.Column("signature_version", sa.Integer(), nullable=True),
        sa.Column("clean", sa.Boolean(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("scanned_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_scan_verdicts_sha256")),
        sa.CheckConstraint(
            "clean = (signature IS NULL)", name=op.f("ck_scan_verdicts_signature")
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_scan_verdicts")),
    )  # fmt: skip
    op.create_index(
        "ix_files_processed_at",
        "files",
        [sa.text("processed_at DESC")],
        postgresql_where=sa.text("state = 'processed'"),
    )
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON scan_verdicts TO "{app_role}"')
    op.execute(CANDIDATES)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {app_role}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    op.drop_index("ix_files_processed_at", table_name="files")
    op.drop_table("scan_verdicts")
