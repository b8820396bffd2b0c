"""The answers from the results: the results table (results.py), intervals, tests and curves (analysis.py, with
stats.py and curves.py), figures (plots.py), the HTML report (report.py), the notebook run headless (notebook.py)."""
