"""GPT-2: decoder-only transformer with learned positions and tied input/output embeddings."""
