"""Every write and business rule of campaigns, split by sub-domain:

`templates` (templates, frozen versions, blocks, branding, footers), `previews` (synthetic previews
and test sends), `campaigns` (editing and the compliance lint of a campaign), `workflow` (the approval
state machine), `launch` (snapshot, send gate, frequency caps, the outbox), `ab` (A/B winners) and
`rendering` (campaign messages rendered at send time for the delivery engine).
"""
