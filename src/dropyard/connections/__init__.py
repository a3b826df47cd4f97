"""Connections: the model, the rules table, the wizard state machine and the service."""
