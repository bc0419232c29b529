"""A job's own URLs: payloads fetched and results uploaded, only where the address policy allows."""
