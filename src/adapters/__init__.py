"""Adapters: the ports implemented over websockets, httpx, openai and subprocesses."""
