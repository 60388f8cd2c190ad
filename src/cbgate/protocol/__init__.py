"""Wire schemas: OpenAI chat requests, responses and chunks."""
