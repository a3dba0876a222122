"""The campaigns' message lint for each email a journey version sends, asked when it is submitted
for review (as `campaign_submit` asks it of a campaign).

Saving a version already freezes each send step's template, which refuses a template with errors
(`template_freeze`: syntax, PHI in the subject or links, contrast, ...). What the template alone
cannot tell is checked here, per send step, with the same rules and facts campaigns use
(`campaigns.templating.lint.lint_message`): commercial email identifies its sender, carries the
organization's postal address and a working unsubscribe link; the sender name has no line break;
marketing names its topic; the brand colours stay readable; PHI travels only under a policy without
a plaintext fallback. Errors refuse the submission; warnings (minimum necessary) do not, as for
campaigns.
"""

from __future__ import annotations

from campaigns.models import TemplateVersion
from campaigns.services import previews
from campaigns.services import templates as template_services
from campaigns.templating import lint as linting
from consent import services as consent
from consent.models import TRANSACTIONAL_PURPOSES
from delivery.models import EncryptionPolicy
from healthmail.errors import NotFound
from healthmail.tenants.models import Tenant

from .. import definition as spec

# Journey email is queued with this policy (services/steps.py `send`).
ENCRYPTION_POLICY = EncryptionPolicy.TLS_ELSE_PORTAL


def _where(key: str, finding: linting.Finding) -> str:
    """Where a finding belongs in the journey: the sender name is journey-wide, the rest is the
    send step's (its topic, or the step itself for the footer and branding)."""
    if finding.where == "Sender name":
        return "sender_name"
    if finding.where == "Topic":
        return f"steps.{key}.topic"
    return f"steps.{key}"


def version_problems(*, tenant: Tenant, definition: dict, uses_phi: bool) -> list[spec.Problem]:
    """The lint errors of every send step of a saved definition (its templates frozen), as problems
    at their place. Empty: the version may be submitted."""
    problems: list[spec.Problem] = []
    sender_name = str(definition.get("sender_name", ""))
    branding = template_services.render_branding(template_services.branding_get(tenant=tenant))
    for key, step in definition["steps"].items():
        if step["type"] != "send":
            continue
        version = TemplateVersion.objects.for_tenant(tenant).get(pk=step["template_version_id"])
        topic = None
        if step["purpose"] not in TRANSACTIONAL_PURPOSES:
            try:
                topic = consent.topic_by_key(tenant=tenant, key=step.get("topic", ""))
            except NotFound:
                topic = None
        facts = linting.MessageFacts(
            purpose=step["purpose"],
            encryption_policy=ENCRYPTION_POLICY,
            uses_phi=uses_phi,
            phi_fields=frozenset(version.phi_fields),
            sender_name=sender_name,
            branding=branding,
            footer=template_services.footer_for(
                tenant=tenant,
                contact=previews.synthetic_recipient(tenant),
                purpose=step["purpose"],
                topic=topic,
                sender_name=sender_name,
            ),
            has_topic=topic is not None,
        )
        for finding in linting.errors_in(linting.lint_message(facts)):
            problem = spec.Problem(_where(key, finding), finding.message)
            if problem not in problems:  # the sender name is the same at every step
                problems.append(problem)
    return problems
