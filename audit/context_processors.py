from .policy import may_review_audit


def audit_review(request):
    """`can_review_audit`: called by the template only when it renders the navigation (one query at most)."""
    tenant, role = getattr(request, "tenant", None), getattr(request, "role", None)
    return {"can_review_audit": lambda: may_review_audit(tenant=tenant, role=role)}
