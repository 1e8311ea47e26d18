"""Audit a labelled data set before training on it: likely label errors, duplicates, leakage, text problems.

``audit(data, test=...)`` returns an :class:`AuditReport`; ``report.to_json()`` is the ``audit.json``
contract other tools read; :func:`suspects` is the table a reviewer marks; :func:`write_clean` writes
a copy without the rows marked to drop. Nothing here edits the data.
"""

from .clean import write_clean
from .config import AuditConfig
from .report import audit_html, suspects
from .run import AuditReport, audit

__all__ = ["AuditConfig", "AuditReport", "audit", "audit_html", "suspects", "write_clean"]
