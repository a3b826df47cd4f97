"""Hosted endpoints: SFTP, FTP(S) and SMTP adapters over one shared session core."""
