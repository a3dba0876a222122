"""The renderer of the "synthetic" source (chaos tests, delivery benchmarks). Worker processes load
it with `celery worker -I tests.delivery.synthetic_renderer`. Obviously fake content, sized so that a
message is ~3 KB on the wire (the size issue 8's throughput goals are stated for): ~0.7 KB of text as a
text and an HTML part, plus the headers and the DKIM signature."""

from delivery.outbox import RenderedContent, register_renderer

BODY = ("Synthetic newsletter paragraph about seasonal flu clinics and opening hours. " * 10)[:700]


def render(message):
    text = f"Hello patient {str(message.contact_id)[:8]},\n\n{BODY}\n"
    return RenderedContent(subject="Flu clinics are open", text=text, html=f"<p>{text}</p>")


register_renderer("synthetic", render)
