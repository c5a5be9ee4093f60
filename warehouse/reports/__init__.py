"""Reports built from the ledger (the book of record): GST (:mod:`warehouse.reports.gst`)."""
