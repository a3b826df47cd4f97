"""Durable file storage behind one narrow protocol: local disk (default) or S3."""
