"""Nearest artists and songs, artist distances."""
