"""Clients to the world outside: partners' servers (SFTP, FTP(S), IMAP) and the mail relay."""
