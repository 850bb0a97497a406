"""rlrec: post-training toolkit for LLM-based generative recommendation with Semantic IDs."""

__version__ = "0.1.0"
