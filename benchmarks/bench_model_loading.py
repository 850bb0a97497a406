"""Time the SmolLM2 GGUF conversion, the cached load, and SA-Init on the real model.

    HF_HUB_OFFLINE=1 python benchmarks/bench_model_loading.py [--cache DIR] [--teacher-clusters 16]

Without `--cache` it converts into a fresh temporary cache, so the one-time conversion is always
measured; the cached load runs in a new process (as a later stage would). The SA-Init part uses the
MovieLens-100k titles with seeded random 3 x 256 codes: the keywords are meaningless, the timings are
those of a real catalog and vocabulary. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def movielens_texts() -> list[str]:
    from rlrec.utils.assets import movielens_100k_dir

    lines = (movielens_100k_dir() / "ml-100k.item").read_text(encoding="latin-1").splitlines()[1:]
    rows = [line.split("\t") for line in lines if line.strip()]
    return [f"{r[1]} {r[3] if len(r) > 3 else ''}" for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", help="RLREC_CACHE to use (default: a fresh temporary folder)")
    parser.add_argument("--teacher-clusters", type=int, default=0, help="also time the teacher on N clusters")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cache = args.cache or tempfile.mkdtemp(prefix="rlrec-bench-")
    os.environ["RLREC_CACHE"] = cache
    results: dict[str, object] = {"cache": cache}

    from rlrec.models.loading import resolve_model_dir

    start = time.perf_counter()
    folder = resolve_model_dir(None)
    results["conversion_s"] = round(time.perf_counter() - start, 2)

    probe = (
        "import time; t = time.perf_counter(); from rlrec.models.loading import load_base_model; "
        "i = time.perf_counter(); load_base_model(None); e = time.perf_counter(); "
        "print(round(i - t, 2), round(e - i, 2))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=os.environ)
    import_s, load_s = (float(x) for x in out.stdout.split()[-2:])
    results.update(cached_load_s=load_s, import_s=import_s, folder=str(folder))

    from rlrec.init import add_sid_tokens, sa_init, token_keywords
    from rlrec.models.loading import load_base_model

    model, tokenizer = load_base_model(None)
    texts = movielens_texts()
    codes = np.random.default_rng(0).integers(0, 256, size=(len(texts), 3))
    vocabulary = [f"<{p}_{c}>" for p in "abc" for c in range(256)]

    start = time.perf_counter()
    ids = add_sid_tokens(tokenizer, model, vocabulary)
    results["add_sid_tokens_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    by_code = token_keywords(codes, texts)
    results["token_keywords_s"] = round(time.perf_counter() - start, 2)
    keywords = [by_code.get((level, code), []) for level in range(3) for code in range(256)]
    for layer in (None, 15, 30):
        start = time.perf_counter()
        report = sa_init(model, tokenizer, ids, keywords, layer=layer)
        results[f"sa_init_layer_{layer}_s"] = round(time.perf_counter() - start, 2)
        results[f"sa_init_layer_{layer}_sid_row_norm"] = report["sid_row_norm"]
    results["vocab_row_norm"] = report["vocab_row_norm"]

    if args.teacher_clusters:
        from rlrec.init import teacher_keywords, token_clusters

        clusters = list(token_clusters(codes).items())[: args.teacher_clusters]
        groups = {key: [texts[i] for i in idx] for key, idx in clusters}
        cache_file = Path(cache) / "teacher.json"
        start = time.perf_counter()
        answers = teacher_keywords(groups, None, cache_file)
        results["teacher_s_per_cluster"] = round((time.perf_counter() - start) / len(groups), 2)
        results["teacher_sample"] = {str(k): v for k, v in list(answers.items())[:3]}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
