"""Contacts: the CSV format, importing files of them, and their personal links."""
