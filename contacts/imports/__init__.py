"""Contact import from CSV/XLSX files: upload, column mapping, a resumable worker job, error report."""
