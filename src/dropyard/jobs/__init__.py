"""The task queue (Huey on SQLite or Redis), its consumer, and the scheduler."""
