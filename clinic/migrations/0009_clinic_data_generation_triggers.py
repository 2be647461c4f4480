"""A write to a clinic row (a rename) adds to that clinic's data generation, as writes to its
records do: pages and search rows that show the clinic's name are then kept under a generation
that a rename changes, and need not read the names to check them (clinic.selectors)."""

from django.db import migrations

from clinic.migrations._statement_triggers import drop_table_triggers_sql, table_triggers_sql

TABLE = "clinic_clinic"
CLINICS_OF_ROWS = "SELECT id FROM {rows}"

# As clinic 0007 and lesions 0010 do: the function names its schema.
SEARCH_PATH_SQL = f"""
DO $$ BEGIN
    EXECUTE format('ALTER FUNCTION {TABLE}_data_changed() SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
END $$;
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
