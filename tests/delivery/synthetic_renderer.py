"""The renderer of the "synthetic" source (chaos tests, delivery benchmarks). Worker processes load
it with `celery worker -I tests.delivery.synthetic_renderer`; ~3 KB of obviously fake content."""

from delivery.outbox import RenderedContent, register_renderer

BODY = ("Synthetic newsletter paragraph about seasonal flu clinics and opening hours. " * 40)[:2800]


def render(message):
    text = f"Hello patient {str(message.contact_id)[:8]},\n\n{BODY}\n"
    return RenderedContent(subject="Flu clinics are open", text=text, html=f"<p>{text}</p>")


register_renderer("synthetic", render)
