"""Every write to lesions, histopathology, captures and analyses adds to its clinic's data
generation (clinic.models.DataGeneration), the key under which the worklist is cached."""

from django.db import migrations

# Each table's rows (the transition table {rows}) to their clinics, through the parent rows. A
# row whose parent is gone (deleted earlier in the same transaction) finds no clinic here, but
# that parent's own trigger already counted the change.
CLINICS_OF_ROWS = {
    "lesions_lesion": "SELECT p.clinic_id FROM {rows} r JOIN clinic_patient p ON p.id = r.patient_id",
    "lesions_histopathology": ("SELECT p.clinic_id FROM {rows} r JOIN lesions_lesion l ON l.id = r.lesion_id "
                               "JOIN clinic_patient p ON p.id = l.patient_id"),
    "lesions_capture": ("SELECT p.clinic_id FROM {rows} r JOIN lesions_lesion l ON l.id = r.lesion_id "
                        "JOIN clinic_patient p ON p.id = l.patient_id"),
    "lesions_analysis": ("SELECT p.clinic_id FROM {rows} r JOIN lesions_capture c ON c.id = r.capture_id "
                         "JOIN lesions_lesion l ON l.id = c.lesion_id JOIN clinic_patient p ON p.id = l.patient_id"),
}


# clinic 0006's helpers as they were when this migration was written, copied so that this
# migration's SQL never changes with that module.
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
        for table, clinics_of_rows in CLINICS_OF_ROWS.items():
            schema_editor.execute(table_triggers_sql(table, clinics_of_rows))


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in CLINICS_OF_ROWS:
            schema_editor.execute(drop_table_triggers_sql(table))


class Migration(migrations.Migration):

    dependencies = [
        ("clinic", "0006_data_generation"),
        ("lesions", "0008_worklist_excision_index_in_display_order"),
    ]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
