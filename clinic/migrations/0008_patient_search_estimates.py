"""Let the planner tell a common name from a rare one in patient search (clinic.selectors.patients_for).

The search keeps the trigram index's condition ("identifier name" contains the query) and adds the
exact one (identifier starts with it, or name contains it). Written as two LIKEs, the exact condition
was estimated as if independent of the first, and both as rare: even "Smith", one patient in twenty,
was expected to match a handful of rows, so the first page always read every match through the
trigram index and sorted them, a cost that grew with the clinic (9,926 rows for "Smith" at 200,000
patients). For a search that the capped count has shown to be common (clinic.selectors.patient_search):
- the exact condition is one function, patient_search_matches, which the planner does not look into
  (plpgsql is never inlined) and so does not count twice;
- a larger statistics sample of the indexed expression lets ANALYZE see common names (with the
  default sample, the benchmark clinic's histogram held no "Smith" at all).
With both, a common name's first page walks the (clinic, name, id) index and stops after a page.
Other searches keep the two LIKEs and the trigram index. SQLite: nothing to do.
"""

from django.db import migrations

CREATE = [
    # strpos / starts_with: the query is compared as text, with no LIKE wildcards to escape. Names
    # are qualified instead of a SET search_path, which would be saved and restored on every row.
    """CREATE OR REPLACE FUNCTION patient_search_matches(identifier text, name text, query text)
       RETURNS boolean LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
       BEGIN
           RETURN pg_catalog.starts_with(pg_catalog.upper(identifier), pg_catalog.upper(query))
               OR pg_catalog.strpos(pg_catalog.upper(name), pg_catalog.upper(query)) > 0;
       END $$""",
    "ALTER INDEX patient_search_trgm ALTER COLUMN 1 SET STATISTICS 1000",
    "ANALYZE clinic_patient",
]
REVERSE = [
    "ALTER INDEX patient_search_trgm ALTER COLUMN 1 SET STATISTICS -1",
    "DROP FUNCTION IF EXISTS patient_search_matches(text, text, text)",
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
    dependencies = [("clinic", "0007_data_generation_slot_locks")]
    operations = [migrations.RunPython(forwards, backwards)]
