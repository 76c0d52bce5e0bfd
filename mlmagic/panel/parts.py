"""Small pieces the panel's sections share: quiet updates of pickers and HTML tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as widgets

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


def discard(*parts: widgets.Widget) -> None:
    """Close widgets no longer shown, with their own layout and style (a front end keeps every
    widget's state until it is closed)."""
    for part in parts:
        for owned in (getattr(part, "layout", None), getattr(part, "style", None)):
            if isinstance(owned, widgets.Widget):
                owned.close()
        part.close()
