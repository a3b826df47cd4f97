"""Outbound files: which rows a run covers, the generators that read them from the ledger,
the streaming writer and file name, and the service that stores the file, keeps its
history and expires it from the hosted folder."""
