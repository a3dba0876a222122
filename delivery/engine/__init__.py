"""The delivery engine: claims due outbox rows, applies the send gate and the encryption policy, and
hands messages to the transport (delivery/smtp) with a record of every try. See docs/delivery.md."""
