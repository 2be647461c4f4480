"""Every write to lesions, histopathology, captures and analyses adds to its clinic's data
generation (clinic.models.DataGeneration), the key under which the worklist is cached."""

from django.db import migrations

from clinic.migrations._statement_triggers import drop_table_triggers_sql, table_triggers_sql

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
