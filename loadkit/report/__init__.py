"""Reports: matplotlib charts, the self-contained report.html, summary.json."""
