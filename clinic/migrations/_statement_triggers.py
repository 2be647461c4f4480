"""The SQL of the data-generation statement triggers, as clinic 0006 wrote it, shared by the
migrations that install such triggers (clinic 0006 and 0009, lesions 0009).

Frozen: a migration's SQL must never change after it has run somewhere, so this module is never
edited (tests/clinic/test_frozen_migration_sql.py holds its hash). New trigger SQL goes into a new
module or into the migration that needs it. The leading underscore keeps Django's migration loader
from taking this module for a migration.
"""


def table_triggers_sql(table: str, clinics_of_rows: str) -> str:
    """INSERT, UPDATE and DELETE statement triggers on `table` that call clinic_data_changed with the
    clinics of the rows written; `clinics_of_rows` selects them from the transition table `{rows}`.
    (PostgreSQL allows transition tables only on single-event triggers: three triggers, one function.)"""
    new, old = clinics_of_rows.format(rows="new_rows"), clinics_of_rows.format(rows="old_rows")
    return f"""
CREATE OR REPLACE FUNCTION {table}_data_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM clinic_data_changed(ARRAY({new}));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM clinic_data_changed(ARRAY({old}));
    ELSE
        PERFORM clinic_data_changed(ARRAY({new} UNION {old}));
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS {table}_inserted ON {table};
DROP TRIGGER IF EXISTS {table}_updated ON {table};
DROP TRIGGER IF EXISTS {table}_deleted ON {table};
CREATE TRIGGER {table}_inserted AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {table}_data_changed();
CREATE TRIGGER {table}_updated AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {table}_data_changed();
CREATE TRIGGER {table}_deleted AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {table}_data_changed();
"""


def drop_table_triggers_sql(table: str) -> str:
    return f"""
DROP TRIGGER IF EXISTS {table}_inserted ON {table};
DROP TRIGGER IF EXISTS {table}_updated ON {table};
DROP TRIGGER IF EXISTS {table}_deleted ON {table};
DROP FUNCTION IF EXISTS {table}_data_changed();
"""
