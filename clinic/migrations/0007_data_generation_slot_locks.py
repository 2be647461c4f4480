"""clinic_data_changed() no longer makes a writer wait: each transaction counts in a slot row that no
other open transaction holds (taken with a transaction advisory lock first), and every counting
function names its schema, so a session with another search_path (pg_restore --data-only sets an
empty one) counts as well. See clinic.models.DataGeneration.

The SQL is frozen here, as written for this migration: later migrations replace it, never edit it."""

from django.db import migrations

# Advisory lock key, one bigint: namespace 0x4C47 ("LG", LesionTrack generation) in the top 16
# bits, the clinic id's low 42 bits, then the slot (6 bits). Other advisory lock users in this
# database must take another namespace (the project has none today). Two clinics whose ids agree
# in their low 42 bits share keys: a slot may then look taken and the next one is used, which
# costs nothing in correctness (the counter rows are still per clinic).
#
# The first slot tried is the backend id modulo 64 (spreading sessions over the rows); the
# setting lesiontrack.generation_pid stands in for the backend id where a test sets it, to make
# two sessions start at one slot. A slot whose lock another transaction holds is skipped, one
# this transaction holds already is taken again (advisory locks are re-entrant). Only when all
# 64 are held elsewhere does it wait, on the first.
FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION clinic_data_changed(clinic_ids bigint[]) RETURNS void AS $$
DECLARE
    clinic bigint;
    first_slot integer := coalesce(nullif(current_setting('lesiontrack.generation_pid', true), '')::bigint,
                                   pg_backend_pid()) % 64;
    chosen integer;
    key_base bigint;
BEGIN
    FOR clinic IN SELECT DISTINCT id FROM unnest(clinic_ids) AS id WHERE id IS NOT NULL ORDER BY 1 LOOP
        key_base := (x'4C47'::bigint << 48) | ((clinic & ((1::bigint << 42) - 1)) << 6);
        chosen := NULL;
        FOR step IN 0..63 LOOP
            IF pg_try_advisory_xact_lock(key_base | ((first_slot + step) % 64)) THEN
                chosen := (first_slot + step) % 64;
                EXIT;
            END IF;
        END LOOP;
        IF chosen IS NULL THEN
            chosen := first_slot;
            PERFORM pg_advisory_xact_lock(key_base | chosen);
        END IF;
        INSERT INTO clinic_datageneration AS g (clinic_id, slot, generation) VALUES (clinic, chosen, 1)
        ON CONFLICT (clinic_id, slot) DO UPDATE SET generation = g.generation + 1;
    END LOOP;
END;
$$ LANGUAGE plpgsql;
"""

# The schema the tables were migrated into, fixed on each function (pg_temp last: a temporary
# table of a caller's cannot stand in for ours).
SEARCH_PATH_SQL = """
DO $$ BEGIN
    EXECUTE format('ALTER FUNCTION clinic_data_changed(bigint[]) SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION clinic_patient_data_changed() SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
END $$;
"""

# clinic 0006's function, for unapplying.
PREVIOUS_FUNCTION_SQL = """
DROP FUNCTION IF EXISTS clinic_data_changed(bigint[]);
CREATE FUNCTION clinic_data_changed(clinic_ids bigint[]) RETURNS void AS $$
    INSERT INTO clinic_datageneration (clinic_id, slot, generation)
    SELECT DISTINCT id, pg_backend_pid() % 64, 1 FROM unnest(clinic_ids) AS id WHERE id IS NOT NULL ORDER BY 1
    ON CONFLICT (clinic_id, slot) DO UPDATE SET generation = clinic_datageneration.generation + 1;
$$ LANGUAGE sql;
ALTER FUNCTION clinic_patient_data_changed() RESET search_path;
"""


def replace_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # None: the % in the SQL is SQL, not a placeholder.
        schema_editor.execute(FUNCTION_SQL, params=None)
        schema_editor.execute(SEARCH_PATH_SQL, params=None)


def restore_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS_FUNCTION_SQL, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("clinic", "0006_data_generation"),
    ]

    operations = [migrations.RunPython(replace_function, restore_function)]
