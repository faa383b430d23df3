"""S3-style supervised semantic tokenizer."""

from audiotok.semantic.s3 import OFFICIAL, S3Config, SemanticTokenizer

__all__ = ["OFFICIAL", "S3Config", "SemanticTokenizer"]
