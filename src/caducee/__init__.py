"""Caducée."""
