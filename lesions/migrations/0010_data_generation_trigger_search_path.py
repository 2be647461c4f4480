"""The lesions tables' data generation trigger functions (lesions 0009) name their schema, as
clinic 0007 does for clinic's: a session with another search_path (pg_restore --data-only sets an
empty one) still finds the tables and clinic_data_changed(). The SQL is frozen here."""

from django.db import migrations

FUNCTIONS = ("lesions_lesion_data_changed", "lesions_histopathology_data_changed",
             "lesions_capture_data_changed", "lesions_analysis_data_changed")

SEARCH_PATH_SQL = """
DO $$ BEGIN
    EXECUTE format('ALTER FUNCTION {function}() SET search_path = pg_catalog, %I, pg_temp', current_schema());
END $$;
"""


def set_search_path(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for function in FUNCTIONS:
            schema_editor.execute(SEARCH_PATH_SQL.format(function=function), params=None)


def reset_search_path(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for function in FUNCTIONS:
            schema_editor.execute(f"ALTER FUNCTION {function}() RESET search_path;")


class Migration(migrations.Migration):

    dependencies = [
        ("clinic", "0007_data_generation_slot_locks"),
        ("lesions", "0009_clinic_data_generation_triggers"),
    ]

    operations = [migrations.RunPython(set_search_path, reset_search_path)]
