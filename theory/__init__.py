"""Analytic claims about toy models, checked against simulation (see ``python -m theory``).

Each module or package directly under ``theory/`` is a topic (``theory/tms``, ``theory/sae``,
...), found by :func:`theory.registry.load_all`. A claim is one ``@claim("<topic>.<name>", ...)``
check in its topic (see :mod:`theory.registry`) plus its test; nothing else lists it.
Large topics keep their mathematics and their claims in separate modules of a package.
"""
