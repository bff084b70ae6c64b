"""The outbox: each channel's sender, with rate limits and retries that outlast an outage."""
