"""The reconciliation's view across tenants: IDs, states and times of work that looks stuck.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 14:00:00+00:00

The reconciliation workflow (`ferry.workflows.reconciliation`) looks for work
that should have ended: uploads still processing past their deadline, shares
active past their expiry, migrations without progress, and tenants that must
have a monitoring workflow. That question spans tenants, which row-level
security exists to prevent, so it is asked through one function that runs
with its owner's rights (SECURITY DEFINER) and answers only identifiers, states
and timestamps: never a file name, an address, metadata or content. The
application role may execute it and nothing else is granted; the owner must
read through row-level security (a superuser or a BYPASSRLS role), which the
upgrade checks, so the function can never answer an empty list because it saw
nothing.

Each kind is answered oldest first, at most `row_limit` rows, each with the
kind's total count (counted before the limit); `only_tenants`, when given,
narrows every kind to those tenants (an operator's look at a few of them).
"""

from collections.abc import Sequence

from alembic import context, op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "ferry_reconciliation(integer, integer, integer, integer, text[])"

CHECK_OWNER = """
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_roles
        WHERE rolname = current_user AND (rolsuper OR rolbypassrls)
    ) THEN
        RAISE EXCEPTION 'the migrating role "%" does not read through row-level security: '
            'the reconciliation function it owns would see no tenant (run migrations as '
            'the owner, a superuser or a BYPASSRLS role)', current_user;
    END IF;
END $$
"""

RECONCILIATION = """
CREATE FUNCTION ferry_reconciliation(
    upload_deadline_seconds integer,
    share_grace_seconds integer,
    migration_idle_seconds integer,
    row_limit integer,
    only_tenants text[] DEFAULT NULL
) RETURNS TABLE (kind text, tenant_id text, object_id text, since timestamptz, total bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    (SELECT 'upload_overdue', f.tenant_id, f.id, f.created_at, count(*) OVER ()
     FROM files f
     WHERE (only_tenants IS NULL OR f.tenant_id = ANY (only_tenants))
       AND f.state = 'processing'
       AND f.created_at < now() - make_interval(secs => upload_deadline_seconds)
     ORDER BY f.created_at LIMIT row_limit)
    UNION ALL
    (SELECT 'share_overdue', s.tenant_id, s.id, s.expires_at, count(*) OVER ()
     FROM shares s
     WHERE (only_tenants IS NULL OR s.tenant_id = ANY (only_tenants))
       AND s.status = 'active'
       AND s.expires_at < now() - make_interval(secs => share_grace_seconds)
     ORDER BY s.expires_at LIMIT row_limit)
    UNION ALL
    (SELECT 'migration_idle', m.tenant_id, m.id, p.last_progress, count(*) OVER ()
     FROM file_migrations m
     CROSS JOIN LATERAL (
         SELECT greatest(m.updated_at, max(i.updated_at)) AS last_progress
         FROM file_migration_items i
         WHERE i.tenant_id = m.tenant_id AND i.migration_id = m.id
     ) p
     WHERE (only_tenants IS NULL OR m.tenant_id = ANY (only_tenants))
       AND m.state = 'running'
       AND p.last_progress < now() - make_interval(secs => migration_idle_seconds)
     ORDER BY p.last_progress LIMIT row_limit)
    UNION ALL
    (SELECT 'tenant_over_quota', t.id, t.id, t.updated_at, count(*) OVER ()
     FROM tenants t
     WHERE (only_tenants IS NULL OR t.id = ANY (only_tenants))
       AND t.over_quota
     ORDER BY t.updated_at LIMIT row_limit)
    UNION ALL
    -- Every tenant past provisioning has a monitoring workflow until it is deleted; a
    -- tenant a few minutes old may still be between its provisioning's last two steps.
    (SELECT 'tenant_monitored', t.id, t.id, t.created_at, count(*) OVER ()
     FROM tenants t
     WHERE (only_tenants IS NULL OR t.id = ANY (only_tenants))
       AND t.status IN ('active', 'suspended', 'deleting')
       AND t.created_at < now() - interval '5 minutes'
     ORDER BY t.created_at)
$$
"""


def upgrade() -> None:
    app_role = str(context.config.attributes.get("app_role", "ferry_app"))
    op.execute(CHECK_OWNER)
    op.execute(RECONCILIATION)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {app_role}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
