"""Trigram indexes so that patient search by name/identifier fragment uses an index on PostgreSQL.

SQLite (the laptop default) has no pg_trgm; there the migration does nothing.
"""

from django.db import migrations

CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS patient_name_trgm ON clinic_patient USING gin (UPPER(name) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS patient_identifier_trgm ON clinic_patient USING gin (UPPER(identifier) gin_trgm_ops)",
]
DROP = ["DROP INDEX IF EXISTS patient_name_trgm", "DROP INDEX IF EXISTS patient_identifier_trgm"]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in CREATE:
            schema_editor.execute(statement)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("clinic", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
