"""The web console: server-rendered pages (FastAPI + Jinja2) over the same services as
the API and the CLI. Every page works without JavaScript."""
