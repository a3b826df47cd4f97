"""Tenants (brand and partner accounts), their users, API tokens and the audit log."""
