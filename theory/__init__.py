"""Analytic claims about toy models, checked against simulation (see ``python -m theory``)."""
