"""The staff HTTP API under /api/v1: bearer tokens from `admin.api_tokens`."""
