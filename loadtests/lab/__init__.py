"""``make lab``: scripted experiments, one per claim the stack teaches, each with a verdict.

A lab states its prediction with the arithmetic, runs a bounded burst against the stack
``make up`` started (loopback only), measures, and says whether the prediction held, with the
numbers and the tolerance band. ``python -m loadtests.lab`` lists them; ``... NAME`` runs one.
"""
