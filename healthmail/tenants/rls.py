"""Row-level security as a migration operation, so every tenant-owned table declares it once.

migrations.RunSQL is avoided on purpose: `EnableRowLevelSecurity("Model")` reads the table name
from the model state and is checked by tests/isolation against every TenantOwnedModel.
"""

from typing import Any

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import ProjectState

CURRENT_TENANT_FUNCTION = """
CREATE OR REPLACE FUNCTION app_current_tenant() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;
"""


class EnableRowLevelSecurity(migrations.operations.base.Operation):
    """ENABLE + FORCE row-level security with a tenant policy for every command.

    `extra_read` adds a permissive SELECT-only policy (an SQL boolean expression), used where a row
    must be found before the tenant is known (a user's memberships, an API key by prefix).
    """

    reversible = True
    reduces_to_sql = True

    def __init__(self, model_name: str, extra_read: str = "", tenant_column: str = "tenant_id"):
        self.model_name = model_name
        self.extra_read = extra_read
        self.tenant_column = tenant_column

    def deconstruct(self) -> tuple[str, list[Any], dict[str, str]]:
        kwargs = {"model_name": self.model_name}
        if self.extra_read:
            kwargs["extra_read"] = self.extra_read
        if self.tenant_column != "tenant_id":
            kwargs["tenant_column"] = self.tenant_column
        return (self.__class__.__name__, [], kwargs)

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        pass

    def _table(self, app_label: str, state: ProjectState) -> str:
        return str(state.apps.get_model(app_label, self.model_name)._meta.db_table)

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        table = schema_editor.quote_name(self._table(app_label, to_state))
        column = schema_editor.quote_name(self.tenant_column)
        schema_editor.execute(CURRENT_TENANT_FUNCTION)
        schema_editor.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        schema_editor.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING ({column} = app_current_tenant()) WITH CHECK ({column} = app_current_tenant())"
        )
        if self.extra_read:
            schema_editor.execute(f"CREATE POLICY lookup ON {table} FOR SELECT USING ({self.extra_read})")

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        table = schema_editor.quote_name(self._table(app_label, from_state))
        schema_editor.execute(f"DROP POLICY IF EXISTS lookup ON {table}")
        schema_editor.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        schema_editor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")

    def describe(self) -> str:
        return f"Enable row-level security on {self.model_name}"
