"""The ipywidgets panel of mlmagic (``%aml_panel``). It calls :mod:`mlmagic.core` only.

``mlmagic.panel()`` returns the widget: this module is callable, so the name ``mlmagic.panel``
is both the package and the function.
"""

from __future__ import annotations

import sys
from types import ModuleType

from mlmagic.panel.view import Panel, panel, show_panel

__all__ = ["Panel", "panel", "show_panel"]


class _CallableModule(ModuleType):
    def __call__(self, namespace=None) -> Panel:
        return panel(namespace)


sys.modules[__name__].__class__ = _CallableModule
