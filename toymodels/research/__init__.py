"""Research tools for the toys, each a module of its own:

- :mod:`.causal` — causal abstraction: DAGs, alignments, interchange interventions, IIA.
- :mod:`.compressed` — compressed computation: the bigram toy and the residual-MLP toy.
- :mod:`.spd` — stochastic parameter decomposition of the toys.
- :mod:`.connections` — known sparse feature connections across two layers.
"""
