"""JSON path filters read a document once: PL/pgSQL functions on PostgreSQL

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

Filters on a JSON path compiled to a CASE that named the document two or three times (its type,
then its value), and PostgreSQL decompresses a TOASTed document again at each: the exact count
of a filtered page read every run's config three times. Each function below reads the document
once; PL/pgSQL so that the planner cannot inline it back into several reads, and costed high so
that it plans the other conditions of a filter (an objective's index) before it. SQLite reads
its JSON text in place and needs none.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Each is NULL (missing: true) where the path is absent or holds another kind of value, exactly
# as the CASE expressions in store/filters.py it replaces.
FUNCTIONS = {
    "training_db_json_number(doc jsonb, path text[]) RETURNS numeric": """
DECLARE
    node jsonb := doc #> path;
    marker text;
BEGIN
    CASE jsonb_typeof(node)
        WHEN 'number' THEN
            RETURN node::numeric;
        WHEN 'object' THEN
            -- {"$float": "<repr>"}: store.jsoncodec's marker of a float JSONB would change.
            marker := node ->> '$float';
            IF node = jsonb_build_object('$float', marker) AND marker NOT IN ('NaN', 'Infinity', '-Infinity') THEN
                RETURN marker::numeric;
            END IF;
        ELSE
            NULL;
    END CASE;
    RETURN NULL;
END
""",
    "training_db_json_string(doc jsonb, path text[]) RETURNS text": """
DECLARE
    node jsonb := doc #> path;
BEGIN
    IF jsonb_typeof(node) = 'string' THEN
        RETURN node #>> '{}';
    END IF;
    RETURN NULL;
END
""",
    "training_db_json_boolean(doc jsonb, path text[]) RETURNS text": """
DECLARE
    node jsonb := doc #> path;
BEGIN
    IF jsonb_typeof(node) = 'boolean' THEN
        RETURN node #>> '{}';
    END IF;
    RETURN NULL;
END
""",
    "training_db_json_missing(doc jsonb, path text[]) RETURNS boolean": """
DECLARE
    node jsonb := doc #> path;
BEGIN
    RETURN node IS NULL
        OR jsonb_typeof(node) = 'null'
        OR node IN ('{"$float": "NaN"}', '{"$float": "Infinity"}', '{"$float": "-Infinity"}');
END
""",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for signature, body in FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {signature} LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE COST 1000 AS $body${body}$body$"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature.split(' RETURNS ')[0]}")
