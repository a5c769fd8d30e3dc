"""Derived outputs of a run directory: results.csv, results.jsonl, report.html, report.txt.

``build_reports(run_dir)`` regenerates all of them from ``hosts/*/result.json``. pandas and
Jinja2 are imported only when an output is written, so importing this package stays cheap.
"""

from __future__ import annotations

from fleet_ecs.report.build import ReportSummary, build_reports
from fleet_ecs.report.rundir import load_results

__all__ = ["ReportSummary", "build_reports", "load_results"]
