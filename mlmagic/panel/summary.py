"""What the panel shows where widgets cannot render (a terminal IPython, a front end
without the widget manager, a saved notebook): the same facts as text or HTML, with links."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from mlmagic import core
from mlmagic.base.display import format_duration
from mlmagic.base.render import html_table, shortened

if TYPE_CHECKING:
    from mlmagic.panel.view import Panel

SHOWN_RUNS = 10
SHOWN_CHARACTERS = 200  # of a name, a list of metrics or of versions
NOTE = "mlmagic panel (a summary: this front end does not show widgets)"


def summary_rows(panel: Panel) -> dict[str, list[list[str]]]:
    """The panel's facts as tables: the latest runs, the models and the endpoints."""
    connection = core.current_connection()
    table = panel.runs.table.sort_values("start_time", ascending=False).head(SHOWN_RUNS)
    metrics = [c for c, _ in panel.runs.columns if c.startswith("metrics.")]
    runs = [
        [_cut(row["name"]), row["status"], format_duration(_ms(row["duration_ms"])),
         _cut(", ".join(f"{c[8:]}={row[c]:.4g}" for c in metrics if row[c] == row[c])),
         (connection.run_url(run_id) if connection else None) or run_id]
        for run_id, row in table.iterrows()
    ]
    models = [[_cut(name), _cut(", ".join(str(v["version"]) for v in versions)),
               _cut(", ".join(f"@{a}: {v['version']}" for v in versions for a in v["aliases"]))]
              for name, versions in panel.models.versions.items()]
    found = panel.deploy.found
    endpoints = [] if found is None else [
        [row.name, row.target, row.model, row.url, row.state]
        for row in found.itertuples(index=False)]
    return {"runs": runs, "models": models, "endpoints": endpoints}


HEADERS = {
    "runs": ["run", "status", "duration", "metrics", "link"],
    "models": ["model", "versions", "aliases"],
    "endpoints": ["endpoint", "target", "model", "url", "state"],
}


def summary_text(panel: Panel) -> str:
    """The summary as plain text."""
    lines = [NOTE, repr(core.status())]
    for part, rows in summary_rows(panel).items():
        lines.append(f"{part} ({len(rows)}{' latest' if part == 'runs' else ''}):")
        lines += ["  " + "  ".join(str(cell) for cell in row) for row in rows] or ["  none"]
    return "\n".join(lines)


def summary_html(panel: Panel, note: str = NOTE) -> str:
    """The summary as HTML, with links to the runs and endpoints, under ``note``."""
    parts = [f"<p><i>{html.escape(note)}</i></p>", core.status()._repr_html_()]
    for part, rows in summary_rows(panel).items():
        parts.append(f"<p><b>{part}</b></p>")
        parts.append(html_table(HEADERS[part], rows) if rows else "<p>none</p>")
    return f"<div class='mlmagic-panel-summary {summary_class(panel)}'>{''.join(parts)}</div>"


def summary_class(panel: Panel) -> str:
    """The CSS class of this panel's summary (the live widget hides it)."""
    return f"mlmagic-summary-{panel.model_id}"


def _cut(text: str) -> str:
    return shortened(text, SHOWN_CHARACTERS)


def _ms(value) -> int | None:
    return None if value != value else int(value)
