"""Bringing the database up to date with folders of audio: plan, analyse, write."""
