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
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from django.core import checks
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from healthmail.tenants.models import TenantOwnedModel

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


def row_aad(tenant_id: uuid.UUID | str, table: str, column: str, object_id: uuid.UUID | str) -> bytes:
    """The associated data binding a ciphertext to its tenant, table, column and row."""
    return f"{tenant_id}|{table}|{column}|{object_id}".encode()


def _aad(instance: TenantOwnedModel, field: EncryptedFieldMixin) -> bytes:
    return row_aad(instance.tenant_id, instance._meta.db_table, field.sealed_column, instance.pk)


def _owned(instance: models.Model) -> TenantOwnedModel:
    # Django's hooks pass a bare Model; every model holding an encrypted field has a tenant FK
    # (checked: crypto.E002), which is all that is read of it here.
    return cast(TenantOwnedModel, instance)


class _Descriptor:
    def __init__(self, field: EncryptedFieldMixin) -> None:
        self.field = field

    def __get__(self, instance: TenantOwnedModel | None, owner: type[models.Model] | None = None) -> Any:
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

    def __set__(self, instance: models.Model, value: Any) -> None:
        instance.__dict__[self.field.attname] = value


if TYPE_CHECKING:
    _Field = models.Field[Any, Any]
else:  # Django's Field takes no type arguments at run time
    _Field = models.Field


class EncryptedFieldMixin(_Field):
    """Stores `bytea`; subclasses define `to_plaintext(value) -> bytes` and `from_plaintext(bytes)`."""

    def __init__(
        self, *args: Any, phi_class: str = PhiClass.IDENTIFIER, sensitive: str = "", **kwargs: Any
    ) -> None:
        self.phi_class = phi_class
        self.sensitive = sensitive
        kwargs.setdefault("editable", True)
        super().__init__(*args, **kwargs)

    def to_plaintext(self, value: Any) -> bytes:
        raise NotImplementedError

    def from_plaintext(self, plaintext: bytes) -> Any:
        raise NotImplementedError

    @property
    def sealed_column(self) -> str:
        """The column bound into the associated data. Django names it when the field joins its model;
        the stubs allow None (a field with no column of its own), which an encrypted field never is."""
        if self.column is None:
            raise TypeError(f"Encrypted field {self.name!r} has no column.")
        return self.column

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        name, path, args, kwargs = super().deconstruct()
        kwargs["phi_class"] = self.phi_class
        if self.sensitive:
            kwargs["sensitive"] = self.sensitive
        return name, path, args, kwargs

    def get_internal_type(self) -> str:
        return "BinaryField"

    def db_type(self, connection: BaseDatabaseWrapper) -> str:
        return "bytea"

    def contribute_to_class(self, cls: type[models.Model], name: str, private_only: bool = False) -> None:
        super().contribute_to_class(cls, name, private_only)
        setattr(cls, self.attname, _Descriptor(self))

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
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

    def _check_row_key(self, model: type[models.Model]) -> list[checks.CheckMessage]:
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

    def from_db_value(
        self, value: bytes | memoryview | None, expression: Any, connection: BaseDatabaseWrapper
    ) -> Sealed | None:
        return None if value is None else Sealed(value)

    def pre_save(self, model_instance: models.Model, add: bool) -> Sealed | None:
        value = model_instance.__dict__.get(self.attname)
        if value is None or isinstance(value, Sealed):
            return value
        instance = _owned(model_instance)
        plaintext, aad = self.to_plaintext(value), _aad(instance, self)
        if rowkeys.row_key_field(self.model):
            return Sealed(rowkeys.seal(rowkeys.instance_row_key(instance), plaintext, aad))
        return Sealed(envelope.encrypt(instance.tenant_id, plaintext, aad))

    def seal_column(
        self,
        *,
        tenant_id: uuid.UUID,
        object_ids: Sequence[str],
        values: Sequence[Any],
        row_keys: Sequence[rowkeys.RowKey] = (),
    ) -> list[Sealed | Any]:
        """What `pre_save` stores for each row of a bulk write (`values[i]` of row `object_ids[i]`,
        sealed under `row_keys[i]` for a model with per-row keys), sealed as one batch: None stays
        None, an already sealed value is kept as it is."""
        tenant, table = str(tenant_id), self.model._meta.db_table
        result: list[Sealed | Any] = list(values)
        positions = [
            i for i, value in enumerate(values) if value is not None and not isinstance(value, Sealed)
        ]
        items = [
            (self.to_plaintext(values[i]), row_aad(tenant, table, self.sealed_column, object_ids[i]))
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

    def get_db_prep_value(self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False) -> Any:
        if value is None:
            return None
        if not isinstance(value, Sealed):
            raise TypeError("Encrypted fields cannot be compared or filtered on; use a blind index.")
        # The backend's DB-API module is set per backend; django-stubs leave it out.
        return connection.Database.Binary(bytes(value))  # type: ignore[attr-defined]

    def to_python(self, value: Any) -> Any:
        return value

    def value_to_string(self, obj: models.Model) -> str:
        raise TypeError("Encrypted fields are not serialized; export through an audited selector.")


class EncryptedTextField(EncryptedFieldMixin):
    def to_plaintext(self, value: Any) -> bytes:
        return str(value).encode()

    def from_plaintext(self, plaintext: bytes) -> str:
        return plaintext.decode()


# json.dumps with these options, without building an encoder per call.
_json_encode = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str).encode


class EncryptedJSONField(EncryptedFieldMixin):
    def to_plaintext(self, value: Any) -> bytes:
        return _json_encode(value).encode()

    def from_plaintext(self, plaintext: bytes) -> Any:
        return json.loads(plaintext)
