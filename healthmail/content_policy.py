"""The Content-Security-Policy every page answers with (django-csp), and its two widenings.

Pages load script, style, images and fonts from our own origin only: no inline script, no inline
style, no plugins, no <base>, never framed. Templates put JavaScript in static files and pass data
through data-* attributes or `json_script`; a script that truly must stay inline carries
`nonce="{{ request.csp_nonce }}"` (django-csp then adds the nonce to the header).

The API reference page sets its own policy (Redoc, healthmail/api/views.py: ApiDocs); the middleware
leaves a header a view already set alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.http import HttpResponseBase

POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])


def _widened(directives: dict[str, list[str]]) -> Callable[[_View], _View]:
    """A view decorator adding `directives` to the policy of that view's pages only."""
    return cast(Callable[[_View], _View], csp_update(directives))


# An email preview is shown in a sandboxed iframe (`srcdoc`, no scripts, no same origin). A srcdoc
# document inherits the policy of the page around it, and email HTML is styled inline by design
# (mail clients drop <link>) and shows the sender's images over https (a logo), so pages that show
# an email allow inline style and https images; script stays as strict as everywhere.
# Follow-up: serve previews from their own URL with a policy of their own, then drop this.
email_preview_policy = _widened({"style-src": [UNSAFE_INLINE], "img-src": ["https:"]})

# The block email editor (GrapesJS, campaigns/views/editor.py) lays out its panels and canvas with
# style it injects at run time (<style> elements and style attributes), as every visual email builder
# does; that page allows inline style. Script stays as strict as everywhere.
block_editor_policy = _widened({"style-src": [UNSAFE_INLINE]})
