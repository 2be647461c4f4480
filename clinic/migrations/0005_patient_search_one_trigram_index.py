"""One trigram index over "identifier name" for patient search (clinic.selectors.patients_for).

With one index per column the planner had to combine two bitmap scans for the OR of
"identifier starts with" and "name contains", and chose a sequential scan of the clinic instead,
for common and rare names alike. SQLite (the laptop default) has no pg_trgm: nothing to do there.
"""

from django.db import migrations

CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS patient_search_trgm ON clinic_patient "
    "USING gin ((UPPER(identifier || ' ' || name)) gin_trgm_ops)",
    "DROP INDEX IF EXISTS patient_name_trgm",
    "DROP INDEX IF EXISTS patient_identifier_trgm",
]
REVERSE = [
    "CREATE INDEX IF NOT EXISTS patient_name_trgm ON clinic_patient USING gin (UPPER(name) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS patient_identifier_trgm ON clinic_patient USING gin (UPPER(identifier) gin_trgm_ops)",
    "DROP INDEX IF EXISTS patient_search_trgm",
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in CREATE:
            schema_editor.execute(statement)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("clinic", "0004_api_token")]
    operations = [migrations.RunPython(forwards, backwards)]
