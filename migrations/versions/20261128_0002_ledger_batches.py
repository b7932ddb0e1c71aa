"""The event ledger's batch functions: many tenants in one round trip, still one tenant at a time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 21:00:00+00:00

The bridge asks which tenants of a batch of records exist, and records the
events it handled, for records of many tenants at once. Row-level security
allows one tenant per statement, so these functions loop inside the database,
setting the transaction's `app.tenant_id` before each tenant's statement: the
policies apply exactly as they do to one query per tenant, without a round trip
per tenant. They run with the caller's rights (SECURITY INVOKER, the default),
so they can see and write nothing the caller could not, and they leave the
caller's own tenant setting as they found it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXISTING_TENANTS = """
CREATE FUNCTION ferry_existing_tenants(tenant_ids text[]) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
DECLARE
    tenant text;
    caller_tenant text := current_setting('app.tenant_id', true);
BEGIN
    FOREACH tenant IN ARRAY tenant_ids LOOP
        PERFORM set_config('app.tenant_id', tenant, true);
        IF EXISTS (SELECT 1 FROM tenants WHERE id = tenant) THEN
            RETURN NEXT tenant;
        END IF;
    END LOOP;
    PERFORM set_config('app.tenant_id', coalesce(caller_tenant, ''), true);
END $$
"""

MARK_PROCESSED = """
CREATE FUNCTION ferry_mark_processed(
    consumer_name text, tenant_ids text[], event_ids text[], event_types text[]
) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
DECLARE
    tenant text;
    caller_tenant text := current_setting('app.tenant_id', true);
BEGIN
    FOR tenant IN SELECT DISTINCT t FROM unnest(tenant_ids) AS t LOOP
        PERFORM set_config('app.tenant_id', tenant, true);
        INSERT INTO processed_events (tenant_id, consumer, event_id, event_type)
        SELECT e.tenant_id, consumer_name, e.event_id, e.event_type
        FROM unnest(tenant_ids, event_ids, event_types) AS e(tenant_id, event_id, event_type)
        WHERE e.tenant_id = tenant
        ON CONFLICT (tenant_id, consumer, event_id) DO NOTHING;
    END LOOP;
    PERFORM set_config('app.tenant_id', coalesce(caller_tenant, ''), true);
END $$
"""


def upgrade() -> None:
    op.execute(EXISTING_TENANTS)
    op.execute(MARK_PROCESSED)


def downgrade() -> None:
    op.execute("DROP FUNCTION ferry_mark_processed(text, text[], text[], text[])")
    op.execute("DROP FUNCTION ferry_existing_tenants(text[])")
