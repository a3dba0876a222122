"""Encrypted model fields. Declare PHI where it lives:

    class Contact(TenantOwnedModel):
        id = models.UUIDField(primary_key=True, default=uuid.uuid4)
        email = EncryptedTextField(phi_class=PhiClass.CONTACT)
        conditions = EncryptedJSONField(phi_class=PhiClass.CLINICAL, sensitive="behavioral_health")

The value is sealed on save with the tenant's data key; associated data binds tenant, table, column
and primary key, so the model needs a client-generated primary key (UUID) and a `tenant` FK.
Reading the attribute decrypts lazily; a ciphertext that fails authentication raises
DecryptionError. Encrypted columns cannot be filtered on: use a blind index (blind.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.core import checks
from django.db import models

from . import access, envelope, rowkeys


class PhiClass(models.TextChoices):
    """What kind of PHI a field holds; masking, export, audit and retention read this."""

    IDENTIFIER = "identifier", "Direct identifier (name, email, phone, address, ids)"
    DATE = "date", "Date tied to a person (birth, visit)"
    DEMOGRAPHIC = "demographic", "Demographic detail"
    CLINICAL = "clinical", "Clinical information"
    CONTENT = "content", "Message content"


class Sealed(bytes):
    """A ciphertext as read from the database, not yet opened."""


def row_aad(tenant_id, table: str, column: str, object_id) -> bytes:
    """The associated data binding a ciphertext to its tenant, table, column and row."""
    return f"{tenant_id}|{table}|{column}|{object_id}".encode()


def _aad(instance: models.Model, field: models.Field) -> bytes:
    return row_aad(instance.tenant_id, instance._meta.db_table, field.column, instance.pk)


class _Descriptor:
    def __init__(self, field: EncryptedFieldMixin):
        self.field = field

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        if self.field.attname not in instance.__dict__:
            instance.refresh_from_db(fields=[self.field.attname])  # a deferred field
        value = instance.__dict__.get(self.field.attname)
        if value is not None:
            access.check(instance, self.field.name)
        if isinstance(value, Sealed):
            plaintext = rowkeys.open_field(
                instance.tenant_id, bytes(value), _aad(instance, self.field), holder=instance
            )
            value = self.field.from_plaintext(plaintext)
            instance.__dict__[self.field.attname] = value
        return value

    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = value


class EncryptedFieldMixin:
    """Stores `bytea`; subclasses define `to_plaintext(value) -> bytes` and `from_plaintext(bytes)`."""

    def __init__(self, *args, phi_class: str = PhiClass.IDENTIFIER, sensitive: str = "", **kwargs):
        self.phi_class = phi_class
        self.sensitive = sensitive
        kwargs.setdefault("editable", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["phi_class"] = self.phi_class
        if self.sensitive:
            kwargs["sensitive"] = self.sensitive
        return name, path, args, kwargs

    def get_internal_type(self) -> str:
        return "BinaryField"

    def db_type(self, connection) -> str:
        return "bytea"

    def contribute_to_class(self, cls, name, private_only=False):
        super().contribute_to_class(cls, name, private_only)
        setattr(cls, self.attname, _Descriptor(self))

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        model = self.model
        if not isinstance(model._meta.pk, models.UUIDField):
            errors.append(
                checks.Error(
                    "Encrypted fields need a UUID primary key (bound into the ciphertext).",
                    obj=self,
                    id="crypto.E001",
                )
            )
        if "tenant" not in {f.name for f in model._meta.get_fields()}:
            errors.append(checks.Error("Encrypted fields need a tenant FK.", obj=self, id="crypto.E002"))
        errors.extend(self._check_row_key(model))
        return errors

    def _check_row_key(self, model) -> list:
        # pre_save makes the row's key while sealing; its column is saved after, so it must come later.
        attname = rowkeys.row_key_field(model)
        if attname is None:
            return []
        names = [f.attname for f in model._meta.concrete_fields]
        if attname not in names or names.index(attname) < names.index(self.attname):
            return [
                checks.Error(
                    f"{model.__name__}.ROW_KEY_FIELD must name a column after every encrypted field.",
                    obj=self,
                    id="crypto.E003",
                )
            ]
        return []

    def from_db_value(self, value, expression, connection):
        return None if value is None else Sealed(value)

    def pre_save(self, model_instance, add):
        value = model_instance.__dict__.get(self.attname)
        if value is None or isinstance(value, Sealed):
            return value
        plaintext, aad = self.to_plaintext(value), _aad(model_instance, self)
        if rowkeys.row_key_field(self.model):
            return Sealed(rowkeys.seal(rowkeys.instance_row_key(model_instance), plaintext, aad))
        return Sealed(envelope.encrypt(model_instance.tenant_id, plaintext, aad))

    def seal_column(
        self,
        *,
        tenant_id,
        object_ids: Sequence[str],
        values: Sequence[Any],
        row_keys: Sequence[rowkeys.RowKey] = (),
    ) -> list:
        """What `pre_save` stores for each row of a bulk write (`values[i]` of row `object_ids[i]`,
        sealed under `row_keys[i]` for a model with per-row keys), sealed as one batch: None stays
        None, an already sealed value is kept as it is."""
        tenant, table = str(tenant_id), self.model._meta.db_table
        result: list = list(values)
        positions = [
            i for i, value in enumerate(values) if value is not None and not isinstance(value, Sealed)
        ]
        items = [
            (self.to_plaintext(values[i]), row_aad(tenant, table, self.column, object_ids[i]))
            for i in positions
        ]
        if rowkeys.row_key_field(self.model):
            if len(row_keys) != len(values):
                raise ValueError("A model with per-row keys needs one key per row.")
            batch = [
                (row_keys[i], plaintext, aad) for i, (plaintext, aad) in zip(positions, items, strict=True)
            ]
            sealed_values = rowkeys.seal_many(batch)
        else:
            sealed_values = envelope.encrypt_many(tenant_id, items)
        for position, sealed in zip(positions, sealed_values, strict=True):
            result[position] = Sealed(sealed)
        return result

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        if not isinstance(value, Sealed):
            raise TypeError("Encrypted fields cannot be compared or filtered on; use a blind index.")
        return connection.Database.Binary(bytes(value))

    def to_python(self, value):
        return value

    def value_to_string(self, obj) -> str:
        raise TypeError("Encrypted fields are not serialized; export through an audited selector.")


class EncryptedTextField(EncryptedFieldMixin, models.Field):
    def to_plaintext(self, value: Any) -> bytes:
        return str(value).encode()

    def from_plaintext(self, plaintext: bytes) -> str:
        return plaintext.decode()


# json.dumps with these options, without building an encoder per call.
_json_encode = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str).encode


class EncryptedJSONField(EncryptedFieldMixin, models.Field):
    def to_plaintext(self, value: Any) -> bytes:
        return _json_encode(value).encode()

    def from_plaintext(self, plaintext: bytes) -> Any:
        return json.loads(plaintext)
