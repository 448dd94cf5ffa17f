"""The quarterly compliance report: pandas over the change log, and its renderings.

`model` holds the report's shape, `quarterly` computes it from change-log events (pure:
no I/O, no clock), and the renderers turn it into HTML, CSV, XLSX and the evidence pack.
"""
