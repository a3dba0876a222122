"""The template engine of campaigns and transactional messages.

`fields` (the merge-field whitelist, each field PHI or not), `sandbox` (the locked-down Jinja2
environment and the static check of what a template may say), `lint` (compliance rules), `html`
(sanitizing, CSS inlining, the generated text part) and `render` (branding layout + the CAN-SPAM
footer that templates cannot remove).
"""
