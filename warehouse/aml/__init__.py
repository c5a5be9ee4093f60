"""AML monitoring over the warehouse (docs/aml.md).

``settings`` holds the thresholds with their sources, ``rules`` the scheduled queries over
ClickHouse (alerts out), ``cases`` the PostgreSQL case file (alerts open cases; close, escalate
to a suspicious-transaction report draft), ``deadlines`` the working-day arithmetic, ``fiu`` the
monthly report to FIU-IND, ``monitor`` the rules and cases for one period, and ``schedule``
which periods are due when (run by the warehouse sink, the process that owns ClickHouse).
"""
