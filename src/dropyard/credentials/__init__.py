"""Credentials: generated passwords, parsed public keys, encrypted remote secrets, rotation."""
