"""``make accuracy``: the demo detectors' accuracy on the held-out synthetic sets, through the
real server (``python -m bench.accuracy --help``).

:mod:`bench.accuracy.metrics` holds the pure, unit-tested detection figures,
:mod:`bench.accuracy.readings` the meter-reading ones; :mod:`bench.accuracy.report` the table and
plots; ``__main__`` runs the server, the client and the sets.
"""
