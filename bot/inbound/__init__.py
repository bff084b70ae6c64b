"""The inbound turn: a pure decision per message, written by one executor (storage.executor)."""
