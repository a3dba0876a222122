"""Create the application's database role and its grants. Run as the schema owner, before and after
`migrate` (HEALTHMAIL_DB_ROLE=owner). Idempotent.

The application role is neither superuser, nor BYPASSRLS, nor owner of any table, so PostgreSQL
row-level security applies to everything it does.
"""

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, InternalError, ProgrammingError, connections, transaction
from psycopg import sql

SAFE_ATTRIBUTES = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION"


class Command(BaseCommand):
    help = "Create or update the non-superuser application role and grant it table privileges."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default", help="Connection alias of the owner role.")

    def handle(self, *args: Any, database: str, **options: Any) -> None:
        connection = connections[database]
        role = settings.DATABASE_APP_USER
        owner = connection.settings_dict["USER"]
        if role == owner:
            raise CommandError(
                "The application role must differ from the owner role (run with HEALTHMAIL_DB_ROLE=owner)."
            )
        password = settings.DATABASE_APP_PASSWORD
        ident = sql.Identifier(role)
        with connection.cursor() as cursor:
            self._ensure_role(cursor, role, password)
            database_name = sql.Identifier(connection.settings_dict["NAME"])
            for grant in (
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database_name, ident),
                sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident),
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
                    ident
                ),
                sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident),
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
                ).format(ident),
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {}"
                ).format(ident),
            ):
                cursor.execute(grant.as_string(cursor.connection))
        self.stdout.write(f"Application role {role} is ready (not superuser, not BYPASSRLS).")

    def _ensure_role(self, cursor: Any, role: str, password: str) -> None:
        """Create the role, or correct it. Roles are shared by every database of the server, so
        parallel set-ups (test workers) may race: an unchanged role is left alone, and a lost race
        is retried."""
        ident = sql.Identifier(role)
        for attempt in range(5):
            cursor.execute(
                "SELECT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls AND NOT rolcreatedb"
                " AND NOT rolcreaterole AND NOT rolreplication FROM pg_roles WHERE rolname = %s",
                [role],
            )
            found = cursor.fetchone()
            if found and found[0] and not password:
                return
            verb = "ALTER" if found else "CREATE"
            statement = sql.SQL("{} ROLE {} WITH {}").format(sql.SQL(verb), ident, sql.SQL(SAFE_ATTRIBUTES))
            if password:
                statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
            try:
                with transaction.atomic(using=cursor.db.alias):
                    cursor.execute(statement.as_string(cursor.connection))
                return
            except (IntegrityError, InternalError, ProgrammingError):
                time.sleep(0.1 * (attempt + 1))  # another set-up changed the role meanwhile
        raise CommandError(f"Could not create or update the role {role}.")
