"""New SID tokens in the model: add them to the vocabulary, describe them with keywords, SA-Init their rows.

The order a stage uses them in: `add_sid_tokens` (vocab.py), keywords and a description per token from the
SID index (keywords.py: offline c-TF-IDF, a teacher LLM, or TS-Rec's keyword file), then `sa_init` (sa_init.py).
"""

from rlrec.init.keywords import (
    ctfidf_keywords,
    describe_keywords,
    index_descriptions,
    index_keyword_file,
    index_keywords,
    keyword_coverage,
    parse_description,
    parse_keywords,
    prefix_clusters,
    prefix_keywords,
    read_keyword_file,
    teacher_descriptions,
    teacher_keywords,
    token_clusters,
    token_keywords,
)
from rlrec.init.sa_init import init_sid_embeddings, sa_init, sid_token_level
from rlrec.init.vocab import add_sid_tokens, check_sid_tokens

__all__ = [
    "add_sid_tokens",
    "check_sid_tokens",
    "ctfidf_keywords",
    "describe_keywords",
    "index_descriptions",
    "index_keyword_file",
    "index_keywords",
    "init_sid_embeddings",
    "keyword_coverage",
    "parse_description",
    "parse_keywords",
    "prefix_clusters",
    "prefix_keywords",
    "read_keyword_file",
    "sa_init",
    "sid_token_level",
    "teacher_descriptions",
    "teacher_keywords",
    "token_clusters",
    "token_keywords",
]
