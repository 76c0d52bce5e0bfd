"""Test support: emulators of the platforms mlmagic talks to, each a package with tests of
its own. Importable as ``support.*`` wherever ``tests/`` is on ``sys.path`` (pytest puts it
there for the root conftest; the benchmarks add it in ``bench/_common.py``)."""
