"""A template or a frozen version previewed with a real contact's data: the integrator sees what this
person would receive. It renders through the same sandboxed path as every preview (previews.preview);
only the values of the contact fields the content uses are read (minimum necessary), inside an audited
PHI read, so the contact's "every access" search finds it. Links and footer stay the synthetic
recipient's: a preview hands out no working unsubscribe link for a real person.

The API asks for the contacts:phi scope; the default preview (no contact) stays synthetic."""

from __future__ import annotations

from audit.phi import phi_access
from contacts import selectors as contacts
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import Template, TemplateVersion
from ..templating import fields as merge_fields
from . import previews
from . import templates as template_services

PURPOSE = "api template preview"


def _columns(names: set[str]) -> list[str]:
    """The Contact columns the named merge fields are read from (what the audit event names)."""
    columns = {field.column for field in merge_fields.CONTACT_FIELDS if field.name in names and field.column}
    if any(name.startswith("custom.") for name in names):
        columns.add("custom_fields")
    return sorted(columns)


def _reader(tenant: Tenant, actor: Actor, contact: Contact):
    def person_values(names: set[str]) -> dict[str, str]:
        with (
            tenant_context(tenant),
            phi_access(
                actor=actor, tenant=tenant, objects=[contact], fields=_columns(names), purpose=PURPOSE
            ),
        ):
            return merge_fields.contact_values(contact, names)

    return person_values


def _language(requested: str, contact: Contact, contents, default: str) -> str:
    """The language asked for; else the contact's when the content has it (as a send chooses)."""
    return requested or (contact.language if contact.language in contents else "") or default


def template_contact_preview(
    *, tenant: Tenant, actor: Actor, template: Template, contact_id, language: str = ""
) -> previews.Preview:
    """The template's current content for this contact (a contact of another organization, or a
    deleted one, is NotFound)."""
    contact = contacts.contact_get(tenant=tenant, contact_id=contact_id)
    contents = template_services.template_contents(template=template)
    return previews.preview(
        tenant=tenant,
        contents=contents,
        blocks=template_services.tenant_blocks(tenant=tenant),
        kind=template.kind,
        language=_language(language, contact, contents, template.default_language),
        person_values=_reader(tenant, actor, contact),
    )


def version_contact_preview(
    *, tenant: Tenant, actor: Actor, version: TemplateVersion, contact_id, language: str = ""
) -> previews.Preview:
    """A frozen version for this contact, as it would go out to them (their language by default)."""
    contact = contacts.contact_get(tenant=tenant, contact_id=contact_id)
    contents = template_services.version_contents(version)
    return previews.preview(
        tenant=tenant,
        contents=contents,
        blocks=version.blocks,
        kind=version.kind,
        language=_language(language, contact, contents, version.default_language),
        person_values=_reader(tenant, actor, contact),
    )
