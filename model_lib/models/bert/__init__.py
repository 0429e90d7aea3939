"""BERT: bidirectional encoder with token types, a pooler and a masked-LM head."""
