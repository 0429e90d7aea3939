"""Llama: decoder-only transformer with RoPE, RMSNorm, SwiGLU and grouped-query attention."""
