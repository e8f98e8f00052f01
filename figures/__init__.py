"""One script per figure of the catalogue; ``python -m figures`` regenerates them."""
