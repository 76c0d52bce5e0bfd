"""mlmagic: the machine-learning lifecycle (connect, track, compare, register, deploy) from a
notebook, as IPython magics backed by plain functions.

``%load_ext mlmagic`` registers the magics and imports nothing heavy; MLflow and the rest are
imported on first use. The same work without IPython::

    import mlmagic
    mlmagic.connect()                      # the embedded default store
    with mlmagic.track("baseline"):
        mlflow.log_metric("rmse", 0.8)
"""

from __future__ import annotations

__version__ = "0.1.0"

from mlmagic.core import PUBLIC as _CORE

__all__ = ["load_ipython_extension", "unload_ipython_extension", "MlmagicError", "panel",
           *_CORE]


def __getattr__(name: str):
    if name in _CORE:
        from mlmagic import core

        return getattr(core, name)
    if name == "panel":  # the subpackage, callable: mlmagic.panel() returns the widget
        import mlmagic.panel

        return mlmagic.panel
    if name == "MlmagicError":
        from mlmagic.base.errors import MlmagicError

        return MlmagicError
    raise AttributeError(f"module 'mlmagic' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython) -> None:
    """Register every mlmagic magic in ``ipython`` (``%load_ext mlmagic``); safe to repeat."""
    from mlmagic.magics import MlMagic

    magics = MlMagic(shell=ipython, parent=ipython)
    ipython.register_magics(magics)
    ipython.configurables[:] = [c for c in ipython.configurables if not isinstance(c, MlMagic)]
    ipython.configurables.append(magics)
    magics.apply_config_file()
    from mlmagic.core.setup import connect_from_config

    connect_from_config()


def unload_ipython_extension(ipython) -> None:
    """Remove the magics that ``load_ipython_extension`` registered."""
    from mlmagic.magics import MlMagic

    for kind, names in MlMagic.magics.items():
        for name in names:
            ipython.magics_manager.magics[kind].pop(name, None)
    ipython.magics_manager.registry.pop(MlMagic.__name__, None)
    ipython.configurables[:] = [c for c in ipython.configurables if not isinstance(c, MlMagic)]
