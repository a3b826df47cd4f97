"""The REST API (FastAPI): thin routes over the same services as the CLI and the UI."""
