"""Small pieces the panel's sections share: quiet updates of pickers and HTML tables."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence

import ipywidgets as widgets

from mlmagic.base.display import html_value

WIDE = widgets.Layout(width="32em")
LABEL_STYLE = {"description_width": "10em"}


def text(description: str, placeholder: str = "") -> widgets.Text:
    """A labelled one-line text field."""
    return widgets.Text(description=description, placeholder=placeholder, layout=WIDE,
                        style=LABEL_STYLE)


def dropdown(description: str) -> widgets.Dropdown:
    """A labelled picker, empty until its options are set."""
    return widgets.Dropdown(description=description, options=[], layout=WIDE,
                            style=LABEL_STYLE)


def button(description: str, on_click: Callable, style: str = "") -> widgets.Button:
    """A button that calls ``on_click(button)``."""
    made = widgets.Button(description=description, button_style=style)
    made.on_click(on_click)
    return made


def set_options(picker: widgets.Dropdown, handler: Callable | None, options: Sequence,
                keep: object = None) -> None:
    """Give ``picker`` new options and select ``keep`` (if among them) or the first, without
    calling its value ``handler``: a refresh is not a user's choice."""
    if handler is not None:
        picker.unobserve(handler, "value")
    try:
        picker.options = list(options)
        choices = [o[1] if isinstance(o, tuple) else o for o in options]
        picker.value = keep if keep in choices else (choices[0] if choices else None)
    finally:
        if handler is not None:
            picker.observe(handler, "value")


def html_table(headers: Sequence[str], rows: Iterable[Sequence[object]],
               css_class: str = "mlmagic-table") -> str:
    """An HTML table; cells that are web addresses become links."""
    head = "".join(f"<th style='text-align:left;padding-right:1em'>{html.escape(h)}</th>"
                   for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left;padding-right:1em'>"
                         f"{html_value('' if c is None else str(c))}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    return f"<table class='{css_class}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def link(label: str, url: str | None) -> str:
    """``label`` as a link to ``url`` (plain text without one)."""
    if not url:
        return html.escape(label)
    return f"<a href='{html.escape(url)}' target='_blank'>{html.escape(label)}</a>"
