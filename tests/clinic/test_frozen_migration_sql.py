"""The trigger SQL that migrations share must never change: a migration that has run on a
database would otherwise mean one thing there and another on a new one."""

import hashlib

from clinic.migrations._statement_triggers import drop_table_triggers_sql, table_triggers_sql

# sha256 of the SQL the module gave when clinic 0006, clinic 0009 and lesions 0009 were written.
# A change to the SQL needs a new module (and a new migration), not a new hash here.
FROZEN_SQL_SHA256 = "d46a7c6962d06ed3f8c8814652463e4ae20761f53fa9f84d7909eb9fd4054d8d"


def test_the_shared_trigger_sql_is_as_the_migrations_were_written():
    sql = table_triggers_sql("example_table", "SELECT clinic_id FROM {rows}") + drop_table_triggers_sql("example_table")

    assert hashlib.sha256(sql.encode()).hexdigest() == FROZEN_SQL_SHA256


def test_the_migration_loader_does_not_take_the_shared_module_for_a_migration():
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)

    assert ("clinic", "0009_clinic_data_generation_triggers") in loader.disk_migrations
    assert not any(name.startswith("_") for app, name in loader.disk_migrations if app == "clinic")
