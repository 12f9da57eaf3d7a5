"""lmlib: the library of *Large Language Models: Principles and Engineering Practice*.

Most modules are exported from the book's chapters (cells marked ``# lmlib: <module>``)
by ``tools/export_lmlib.py``; do not edit those by hand. Hand-written infrastructure
lives in :mod:`lmlib.data` (datasets and weights), :mod:`lmlib.profiles` (chapter set-up
and budgets) and :mod:`lmlib.plot` (figure style).
"""

__version__ = "0.1.0"
