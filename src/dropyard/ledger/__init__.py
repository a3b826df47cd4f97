"""The platform's own data: campaigns, partners, and what inbound files feed."""
