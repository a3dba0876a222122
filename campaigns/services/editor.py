"""The block editor's save: MJML rendered by mrml, then stored through the template service.

Nothing here renders merge fields or checks compliance: the HTML mrml produces is saved with
template_create/template_update (which lint it) and frozen with template_freeze, the same path a
hand-written template takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from healthmail.actors import Actor
from healthmail.tenants.models import Tenant

from ..models import Template, TemplateVersion
from ..templating import lint as linting
from ..templating.mjml import MjmlError, mjml_render, without_footer_placeholder
from . import templates
from .common import CampaignError


@dataclass(frozen=True)
class DesignInput:
    language: str
    subject: str
    preheader: str
    mjml: str


@dataclass(frozen=True)
class DesignSaved:
    template: Template
    lint: linting.TemplateLint
    version: TemplateVersion | None  # None while the lint finds errors (nothing can be frozen)


def design_render(*, mjml: str) -> str:
    try:
        return mjml_render(mjml)
    except MjmlError as error:
        raise CampaignError(str(error), code="mjml_invalid") from error


@transaction.atomic
def template_design_save(
    *,
    tenant: Tenant,
    actor: Actor,
    design: DesignInput,
    template: Template | None = None,
    name: str = "",
    kind: str = Template.Kind.MARKETING,
) -> DesignSaved:
    """Save one language built in the block editor; a new template when `template` is None. A clean
    lint freezes the content as the template's next version at once."""
    html = design_render(mjml=design.mjml)
    content = templates.ContentInput(
        design.language,
        design.subject,
        design.preheader,
        html,
        "",
        mjml=without_footer_placeholder(design.mjml.strip()),
    )
    if template is None:
        template = templates.template_create(
            tenant=tenant, actor=actor, name=name, kind=kind, content=content
        )
        result = templates.template_lint(tenant=tenant, template=template)
    else:
        result = templates.template_update(tenant=tenant, actor=actor, template=template, content=content)
    version = None
    if not result.errors:
        version = templates.template_freeze(tenant=tenant, actor=actor, template=template)
    return DesignSaved(template=template, lint=result, version=version)
