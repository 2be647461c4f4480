"""The trigger SQL that migrations share must never change: a migration that has run on a
database would otherwise mean one thing there and another on a new one."""

import hashlib
from importlib import import_module

from clinic.migrations._statement_triggers import drop_table_triggers_sql, table_triggers_sql

# sha256 of the SQL the module gave, for every table the migrations install triggers on, when clinic
# 0006, clinic 0009 and lesions 0009 were written. A change to the SQL needs a new module (and a new
# migration), not a new hash here.
FROZEN_SQL_SHA256 = "e6b99a5527dda7478715cdb2601b1e436deecb13a3a2711a8b8790cb6c952962"


def tables_the_migrations_trigger() -> dict[str, str]:
    """Each table and its `clinics_of_rows` SELECT, as the migrations pass them."""
    clinic_0009 = import_module("clinic.migrations.0009_clinic_data_generation_triggers")
    lesions_0009 = import_module("lesions.migrations.0009_clinic_data_generation_triggers")
    return {"clinic_patient": import_module("clinic.migrations.0006_data_generation").PATIENT_CLINICS,
            clinic_0009.TABLE: clinic_0009.CLINICS_OF_ROWS, **lesions_0009.CLINICS_OF_ROWS}


def test_the_shared_trigger_sql_is_as_the_migrations_were_written():
    tables = tables_the_migrations_trigger()
    sql = "".join(table_triggers_sql(table, rows) + drop_table_triggers_sql(table) for table, rows in tables.items())

    assert len(tables) == 6
    assert hashlib.sha256(sql.encode()).hexdigest() == FROZEN_SQL_SHA256


def test_the_migration_loader_does_not_take_the_shared_module_for_a_migration():
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)

    assert ("clinic", "0009_clinic_data_generation_triggers") in loader.disk_migrations
    assert not any(name.startswith("_") for app, name in loader.disk_migrations if app == "clinic")
