"""The bottom layer: what every other part of mlmagic may import, and which imports none of
them. Errors (one family), secrets (what is one, and hiding them), notices, progress and
cards, input checks, failure detection (network, HTTP status, full or read-only stores),
environment overrides, and settings files."""
