"""The report as a file: CSV (every cell neutralised against formula injection, OWASP "CSV
Injection") and PDF (fpdf2, Noto Sans embedded). Both carry exactly the figures the page shows the
same viewer: the disclosed cells, never the raw counts, and link labels, never URLs."""

from __future__ import annotations

import csv
import io

import fontpkg_noto_sans
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from healthmail.spreadsheet import spreadsheet_safe

from .report import CampaignReport
from .series import SERIES

FONT = fontpkg_noto_sans.ROOT / "files" / "NotoSans[wdth,wght].ttf"
MARGIN_MM = 18


def _sections(report: CampaignReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table of the report, in page order."""
    campaign, totals = report.campaign, report.totals
    columns = [f"Variant {c}" if c != "total" else "Total" for c in totals.columns]
    sections = [
        (
            "Campaign",
            ["Field", "Value"],
            [
                ["Campaign", campaign.name],
                ["Status", campaign.get_status_display()],
                ["Goal", campaign.get_goal_display()],
                ["Primary metric", campaign.get_primary_metric_display()],
                ["Goal target", str(campaign.goal_target or "")],
                [
                    "Launched",
                    campaign.launched_at.strftime("%Y-%m-%d %H:%M UTC") if campaign.launched_at else "",
                ],
            ],
        ),
        ("Totals", ["Metric", *columns], [[label, *cells] for label, cells in totals.rows()]),
        (
            "By day",
            ["Day", *[label for _, label in SERIES]],
            [[day.isoformat(), *cells] for day, cells in report.series.rows()],
        ),
        (
            "Clicks by link",
            ["Link", "Unique clicks"],
            [[link["label"], link["display"]] for link in report.links],
        ),
        ("Bounces by class", ["Class", "Messages"], [[b["label"], b["display"]] for b in report.bounces]),
    ]
    for comparison in report.ab:
        rows = [[r["variant"], r["sent"], r["successes"], r["rate"]] for r in comparison.rows]
        if comparison.test is not None:
            rows.append(["Significance", comparison.test.note, "", ""])
        sections.append(
            (
                f"A/B comparison ({comparison.metric_label.lower()})",
                ["Variant", "Sent", comparison.metric_label, "Rate"],
                rows,
            )
        )
    return sections


def report_csv(report: CampaignReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    for title, header, rows in _sections(report):
        writer.writerow([spreadsheet_safe(title)])
        for row in [header, *rows]:
            writer.writerow([spreadsheet_safe(cell) for cell in row])
        writer.writerow([])
    return out.getvalue()


def report_pdf(report: CampaignReport) -> bytes:
    document = FPDF(unit="mm", format="Letter")
    document.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
    document.set_auto_page_break(auto=True, margin=MARGIN_MM)
    document.set_title(f"Report: {report.campaign.name}")
    document.set_producer("HealthMail")
    document.set_creator("HealthMail")
    document.add_font("NotoSans", "", str(FONT))
    document.add_page()
    document.set_font("NotoSans", size=16)
    document.multi_cell(0, 8, f"Report: {report.campaign.name}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    document.set_font("NotoSans", size=8.5)
    document.multi_cell(
        0,
        5,
        "Aggregate counts only, as the disclosure policy shows them to you: small counts are hidden "
        "and counts on clinical criteria may be rounded. Links are named by their label, never their "
        "address.",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    for title, header, rows in _sections(report):
        document.ln(3)
        document.set_font("NotoSans", size=12)
        document.cell(0, 7, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        document.set_font("NotoSans", size=8.5)
        if not rows:
            document.cell(0, 5, "Nothing recorded yet.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            continue
        # Headings in the regular face on a grey fill: only the regular face is embedded.
        headings = FontFace(emphasis="", fill_color=(230, 234, 238))
        with document.table(first_row_as_headings=True, line_height=5, headings_style=headings) as table:
            for row in [header, *rows]:
                cells = table.row()
                for cell in row:
                    cells.cell(str(cell))
    return bytes(document.output())
