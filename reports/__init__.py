"""Run reports: ``lab report runs/<exp>`` turns a sweep's run directory into one self-contained HTML file
(plus Markdown, CSV/LaTeX tables and PNG/SVG figures). ``reports.report.build_report`` is the API a
sweep calls when it finishes."""
