"""Database infrastructure: engine and session factory, the declarative base, migrations."""
