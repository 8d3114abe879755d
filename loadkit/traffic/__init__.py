"""The Locust side: LLM users, open-loop scheduler, load shape, record shipping, budget."""
