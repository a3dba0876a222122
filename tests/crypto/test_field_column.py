"""The column an encrypted field binds into its associated data (fields.py: row_aad)."""

from tests.testapp.models import SecretNote


def test_a_field_seals_under_its_own_column():
    field = SecretNote._meta.get_field("body")
    assert field.sealed_column == field.column == "body"
