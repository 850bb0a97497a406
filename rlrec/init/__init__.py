"""New SID tokens in the model: add them to the vocabulary, describe them with keywords, SA-Init their rows.

The order a stage uses them in: `add_sid_tokens` (vocab.py), keywords and a description per token from the
SID index (keywords.py, from ctfidf.py offline, teacher.py with a teacher LLM, or keyword_file.py with TS-Rec's
file), then `sa_init` (sa_init.py).
"""

from rlrec.init.ctfidf import ctfidf_keywords, prefix_clusters, prefix_keywords, token_clusters, token_keywords
from rlrec.init.keyword_file import index_keyword_file, keyword_coverage, read_keyword_file
from rlrec.init.keywords import describe_keywords, index_descriptions, index_keywords
from rlrec.init.sa_init import init_sid_embeddings, sa_init, sid_token_level
from rlrec.init.teacher import parse_description, parse_keywords, teacher_descriptions, teacher_keywords
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
