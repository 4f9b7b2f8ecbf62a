"""``make bench``: where the time goes, measured side by side in one run.

Every figure is taken against a baseline in the same run, interleaved round by round, so that
other load on the machine hits both alike; the table reports ratios next to min/median/max.
``python -m bench --help`` lists the sections and options.
"""
