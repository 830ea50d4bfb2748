"""Search spaces of MobileMamba Lab: one module per question, each exposing ``space(base=...)`` and ``SPACE``."""
