"""File records, their states and history, receipts and results."""
