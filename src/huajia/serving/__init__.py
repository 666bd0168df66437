"""Serving huajia: OpenAI-compatible HTTP API, persistent queue, cache, limits, safety."""
