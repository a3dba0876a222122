"""Templates, their frozen versions, reusable blocks, branding and footers (previews and test sends:
previews.py).

Every save re-runs the lint and stores the result, so the editor, the campaign and the reviewers
always see the findings of the content as it is now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from audit import services as audit
from consent.links import preferences_url, unsubscribe_url
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.errors import Conflict, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import LANGUAGE, Branding, ContentBlock, Template, TemplateContent, TemplateVersion
from ..templating import fields as merge_fields
from ..templating import lint as linting
from ..templating import render
from ..templating.sandbox import analyze
from .common import CampaignConflict, CampaignError

MAX_LANGUAGES = 12


@dataclass(frozen=True)
class ContentInput:
    language: str
    subject: str
    preheader: str
    html: str
    text: str = ""
    mjml: str = ""  # the block editor's source of `html`; empty for hand-written HTML

    def parts(self) -> render.Parts:
        return render.Parts(self.subject, self.preheader, self.html, self.text)


# --- Reads the services share ---------------------------------------------------------------------


def tenant_blocks(*, tenant: Tenant) -> dict[str, str]:
    with tenant_context(tenant):
        return dict(ContentBlock.objects.for_tenant(tenant).values_list("key", "html"))


def template_contents(*, template: Template) -> dict[str, render.Parts]:
    with tenant_context(template.tenant_id):
        rows = TemplateContent.objects.for_tenant(template.tenant_id).filter(template=template)
        return {c.language: render.Parts(c.subject, c.preheader, c.html, c.text) for c in rows}


def template_content_get(*, template: Template, language: str) -> TemplateContent | None:
    with tenant_context(template.tenant_id):
        return (
            TemplateContent.objects.for_tenant(template.tenant_id)
            .filter(template=template, language=language)
            .first()
        )


def version_contents(version: TemplateVersion) -> dict[str, render.Parts]:
    return {language: render.Parts(**parts) for language, parts in version.contents.items()}


def field_set_for(*, tenant: Tenant, kind: str) -> merge_fields.FieldSet:
    with tenant_context(tenant):
        return merge_fields.field_set(tenant=tenant, allow_data=kind == Template.Kind.TRANSACTIONAL)


def template_lint(*, tenant: Tenant, template: Template) -> linting.TemplateLint:
    return linting.lint_template(
        contents=template_contents(template=template),
        blocks=tenant_blocks(tenant=tenant),
        field_set=field_set_for(tenant=tenant, kind=template.kind),
    )


def version_lint(*, tenant: Tenant, version: TemplateVersion) -> linting.TemplateLint:
    """The lint of a frozen version with the blocks frozen with it."""
    return linting.lint_template(
        contents=version_contents(version),
        blocks=version.blocks,
        field_set=field_set_for(tenant=tenant, kind=version.kind),
    )


def template_relint(tenant: Tenant, template: Template) -> linting.TemplateLint:
    """Lint again and store the findings (every save, and before a freeze or a test send)."""
    result = template_lint(tenant=tenant, template=template)
    template.lint = result.as_dict()
    template.has_errors = bool(result.errors)
    Template.objects.filter(pk=template.pk).update(lint=template.lint, has_errors=template.has_errors)
    return result


# --- Templates ------------------------------------------------------------------------------------


def _clean_language(language: str) -> str:
    language = (language or "").strip().lower()
    # The model's own rule (models.LANGUAGE): save() does not run validators, so it is checked here.
    try:
        LANGUAGE(language)
    except ValidationError:
        raise CampaignError("Give a language code like en or es.", code="language_invalid") from None
    if len(language) > 12:
        raise CampaignError("Give a language code like en or es.", code="language_invalid")
    return language


@transaction.atomic
def template_create(
    *,
    tenant: Tenant,
    actor: Actor,
    name: str,
    content: ContentInput,
    kind: str = Template.Kind.MARKETING,
    description: str = "",
) -> Template:
    if not name.strip():
        raise CampaignError("Give the template a name.", code="name_required")
    if kind not in Template.Kind.values:
        raise CampaignError("Unknown template kind.", code="kind_invalid")
    language = _clean_language(content.language)
    with tenant_context(tenant):
        try:
            with transaction.atomic():
                template = Template.objects.create(
                    tenant=tenant,
                    name=name.strip(),
                    kind=kind,
                    description=description.strip(),
                    default_language=language,
                    created_by=actor.user,
                )
        except IntegrityError as error:
            raise Conflict(f"A template named “{name.strip()}” exists.", code="template_exists") from error
        TemplateContent.objects.create(
            tenant=tenant, template=template, **{**_content_fields(content), "language": language}
        )
        result = template_relint(tenant, template)
        audit.record(
            actor=actor,
            action="campaign.template_create",
            target=template,
            tenant=tenant,
            details={"errors": len(result.errors), "warnings": len(result.warnings)},
        )
    return template


def _content_fields(content: ContentInput) -> dict[str, str]:
    return {
        "subject": content.subject.strip(),
        "preheader": content.preheader.strip(),
        "html": content.html,
        "text": content.text,
        "mjml": content.mjml,
    }


@transaction.atomic
def template_update(
    *,
    tenant: Tenant,
    actor: Actor,
    template: Template,
    content: ContentInput,
    name: str | None = None,
    description: str | None = None,
    make_default: bool = False,
) -> linting.TemplateLint:
    """Save one language (added when new). Campaigns keep their frozen versions; the template's
    next version is what a new submission freezes."""
    language = _clean_language(content.language)
    with tenant_context(tenant):
        locked = Template.objects.select_for_update(of=("self",)).get(pk=template.pk, tenant=tenant)
        existing = (
            TemplateContent.objects.for_tenant(tenant).filter(template=locked, language=language).first()
        )
        if existing is None:
            if TemplateContent.objects.for_tenant(tenant).filter(template=locked).count() >= MAX_LANGUAGES:
                raise CampaignError(
                    f"A template has at most {MAX_LANGUAGES} languages.", code="too_many_languages"
                )
            TemplateContent.objects.create(
                tenant=tenant, template=locked, language=language, **_content_fields(content)
            )
        else:
            for attribute, value in _content_fields(content).items():
                setattr(existing, attribute, value)
            existing.save()
        if name is not None and name.strip():
            locked.name = name.strip()
        if description is not None:
            locked.description = description.strip()
        if make_default:
            locked.default_language = language
        locked.revision += 1
        try:
            with transaction.atomic():
                locked.save()
        except IntegrityError as error:
            raise Conflict(f"A template named “{locked.name}” exists.", code="template_exists") from error
        result = template_relint(tenant, locked)
        template.__dict__.update({k: v for k, v in locked.__dict__.items() if not k.startswith("_")})
        audit.record(
            actor=actor,
            action="campaign.template_update",
            target=locked,
            tenant=tenant,
            details={"language": language, "revision": locked.revision, "errors": len(result.errors)},
        )
    return result


@transaction.atomic
def template_language_remove(*, tenant: Tenant, actor: Actor, template: Template, language: str) -> None:
    """Remove one language. The default one stays (409 language_is_default): every send falls back
    to it. Frozen versions keep the language they were frozen with."""
    language = (language or "").strip().lower()
    with tenant_context(tenant):
        # Locked as a save locks it: a concurrent "make default" cannot make it the default meanwhile.
        locked = Template.objects.select_for_update(of=("self",)).get(pk=template.pk, tenant=tenant)
        if language == locked.default_language:
            raise CampaignConflict(
                "The default language cannot be removed; make another language the default first.",
                code="language_is_default",
            )
        deleted, _ = (
            TemplateContent.objects.for_tenant(tenant).filter(template=locked, language=language).delete()
        )
        if not deleted:
            raise NotFound("No such language in this template.", code="language_not_found")
        locked.revision += 1
        locked.save(update_fields=["revision", "updated_at"])
        template_relint(tenant, locked)
        template.__dict__.update({k: v for k, v in locked.__dict__.items() if not k.startswith("_")})
        audit.record(
            actor=actor,
            action="campaign.template_language_remove",
            target=locked,
            tenant=tenant,
            details={"language": language, "revision": locked.revision},
        )


@transaction.atomic
def template_freeze(*, tenant: Tenant, actor: Actor, template: Template) -> TemplateVersion:
    """Freeze the current content (and the blocks it includes) as the next version. Refused while
    the lint finds errors."""
    with tenant_context(tenant):
        locked = (
            Template.objects.select_for_update(of=("self",))
            .filter(pk=template.pk, tenant=tenant, archived_at__isnull=True)
            .first()
        )
        if locked is None:  # removed (template_lifecycle.py): nothing new may use it
            raise NotFound("No such template.", code="template_not_found")
        result = template_relint(tenant, locked)
        if result.errors:
            raise CampaignError(
                f"The template “{locked.name}” has {len(result.errors)} compliance error(s); fix them first.",
                code="template_has_errors",
            )
        contents = template_contents(template=locked)
        blocks = tenant_blocks(tenant=tenant)
        used_blocks = _blocks_used(contents, blocks)
        latest = TemplateVersion.objects.for_tenant(tenant).filter(template=locked).first()
        if (
            latest is not None
            and latest.contents == {k: p.as_dict() for k, p in contents.items()}
            and (latest.blocks == used_blocks and latest.default_language == locked.default_language)
        ):
            return latest  # nothing changed since the last freeze: reuse it
        return TemplateVersion.objects.create(
            tenant=tenant,
            template=locked,
            number=(latest.number + 1) if latest else 1,
            kind=locked.kind,
            default_language=locked.default_language,
            contents={language: parts.as_dict() for language, parts in contents.items()},
            blocks=used_blocks,
            fields=sorted(result.fields),
            phi_fields=sorted(result.phi_fields),
            created_by=actor.reference,
        )


@transaction.atomic
def template_version_create(
    *, tenant: Tenant, actor: Actor, template: Template
) -> tuple[TemplateVersion, bool]:
    """Freeze the template's content now (as a submission does), recorded; (version, created): the
    latest version when nothing changed since it was frozen."""
    with tenant_context(tenant):
        before = TemplateVersion.objects.for_tenant(tenant).filter(template=template).first()
        version = template_freeze(tenant=tenant, actor=actor, template=template)
        created = before is None or version.pk != before.pk
        audit.record(
            actor=actor,
            action="campaign.template_version_create",
            target=template,
            tenant=tenant,
            details={"version": version.number, "created": created},
        )
    return version, created


def _blocks_used(contents: Mapping[str, render.Parts], blocks: Mapping[str, str]) -> dict[str, str]:
    everything = merge_fields.FieldSet({}, allow_data=True)
    used: set[str] = set()
    for parts in contents.values():
        for source in parts.as_dict().values():
            used |= analyze(source, field_set=everything, blocks=blocks).blocks
    return {key: blocks[key] for key in sorted(used)}


# --- Reusable blocks ------------------------------------------------------------------------------


@transaction.atomic
def block_save(
    *, tenant: Tenant, actor: Actor, key: str, name: str, html: str, block: ContentBlock | None = None
) -> ContentBlock:
    with tenant_context(tenant):
        if block is None:
            block = ContentBlock(tenant=tenant)
        block.key, block.name, block.html = key.strip(), name.strip(), html
        try:
            with transaction.atomic():
                block.save()
        except IntegrityError as error:
            raise Conflict(f"A block with the key “{key}” exists.", code="block_exists") from error
        # Templates that include the block are linted again: the block is part of their content.
        for template in Template.objects.for_tenant(tenant):
            template_relint(tenant, template)
        audit.record(actor=actor, action="campaign.block_save", target=block, tenant=tenant)
    return block


# --- Branding -------------------------------------------------------------------------------------


def branding_get(*, tenant: Tenant) -> Branding:
    with tenant_context(tenant):
        found = Branding.objects.for_tenant(tenant).first()
    return found or Branding(tenant=tenant, sender_name=tenant.name)


@transaction.atomic
def branding_update(*, tenant: Tenant, actor: Actor, values: Mapping[str, str]) -> Branding:
    branding = branding_get(tenant=tenant)
    for name in ("sender_name", "logo_url", "primary_color", "background_color", "text_color", "footer_text"):
        if name in values:
            setattr(branding, name, (values[name] or "").strip())
    if render.HEADER_UNSAFE.search(branding.sender_name):
        raise CampaignError("The sender name may not contain line breaks.", code="header_injection")
    try:
        branding.full_clean(exclude=["tenant"])
    except ValidationError as error:
        raise CampaignError(" ".join(error.messages), code="branding_invalid") from error
    with tenant_context(tenant):
        branding.save()
        audit.record(actor=actor, action="campaign.branding_update", target=branding, tenant=tenant)
    return branding


def render_branding(branding: Branding) -> render.Branding:
    return render.Branding(
        sender_name=branding.sender_name,
        logo_url=branding.logo_url,
        primary_color=branding.primary_color,
        background_color=branding.background_color,
        text_color=branding.text_color,
        footer_text=branding.footer_text,
    )


# --- Footers ---------------------------------------------------------------------------------------


def footer_for(*, tenant: Tenant, contact: Contact, purpose: str, topic, sender_name: str) -> render.Footer:

    commercial = purpose in linting.COMMERCIAL_PURPOSES
    return render.Footer(
        sender_identity=sender_name or tenant.name,
        postal_address=tenant.postal_address,
        commercial=commercial,
        unsubscribe_url=unsubscribe_url(contact=contact, topic=topic) if commercial else "",
        preferences_url=preferences_url(contact=contact) if commercial else "",
        topic_name=topic.name if (commercial and topic is not None) else "",
    )
