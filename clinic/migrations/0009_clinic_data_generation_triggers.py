"""A write to a clinic row (a rename) adds to that clinic's data generation, as writes to its
records do: pages and search rows that show the clinic's name are then kept under a generation
that a rename changes, and need not read the names to check them (clinic.selectors)."""

from django.db import migrations

TABLE = "clinic_clinic"
CLINICS_OF_ROWS = "SELECT id FROM {rows}"

# As clinic 0007 and lesions 0010 do: the function names its schema.
SEARCH_PATH_SQL = f"""
DO $$ BEGIN
    EXECUTE format('ALTER FUNCTION {TABLE}_data_changed() SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
END $$;
"""


# clinic 0006's helpers as they were when this migration was written, copied (as lesions 0009
# copies them) so that this migration's SQL never changes with that module.
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


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(table_triggers_sql(TABLE, CLINICS_OF_ROWS))
        schema_editor.execute(SEARCH_PATH_SQL, params=None)  # None: the % in it is SQL, not a placeholder


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(drop_table_triggers_sql(TABLE))


class Migration(migrations.Migration):

    dependencies = [
        ("clinic", "0008_patient_search_estimates"),
    ]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
