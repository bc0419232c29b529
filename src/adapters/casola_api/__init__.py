"""The Casola API: heartbeats, log shipping and system metrics."""
