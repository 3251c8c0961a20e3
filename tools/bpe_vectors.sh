#!/bin/sh
# Regenerates tests/vectors/ (the BPE tokenizer's reference vectors) with
# llama.cpp's own llama-tokenize (built by tools/llama_cpp.sh) on SmolLM2's
# GGUF, and on two copies of it whose tokenizer.ggml.pre is rewritten to
# llama-bpe and gpt-2 by gguf-py's gguf_new_metadata.py (written to a
# temporary directory, removed at the end). Needs a python3 with numpy.
# See tests/vectors/README.md.
set -eu
CACHE=${W4A8_CACHE:-$HOME/.cache/w4a8}
LLAMA=$CACHE/llama.cpp-0.3.36
BIN=$LLAMA/build/bin/llama-tokenize
SRC=$LLAMA/llama_cpp_python-0.3.36/vendor/llama.cpp
MODEL=$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf
WIKI=${W4A8_DATA:-../shared/data}/wikitext2_test_raw.txt
PY=${PYTHON:-python3}
OUT=tests/vectors
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for f in "$BIN" "$MODEL" "$WIKI"; do [ -e "$f" ] || { echo "bpe_vectors: missing $f" >&2; exit 1; }; done
# gguf-py imports tqdm for its progress bar only
mkdir -p "$TMP/stub"
printf 'class tqdm:\n    def __init__(self, *a, **k): pass\n    def update(self, *a, **k): pass\n    def close(self): pass\n' > "$TMP/stub/tqdm.py"
for pre in smollm llama-bpe gpt-2; do
  m=$MODEL
  if [ "$pre" != smollm ]; then
    m=$TMP/$pre.gguf
    PYTHONPATH="$SRC/gguf-py:$TMP/stub" "$PY" "$SRC/gguf-py/gguf/scripts/gguf_new_metadata.py" \
      "$MODEL" "$m" --pre-tokenizer "$pre" --force >/dev/null 2>&1
  fi
  "$BIN" -m "$m" -f $OUT/smollm2_special.txt --ids --no-escape --log-disable 2>/dev/null > $OUT/smollm2_special.$pre.ids
  "$BIN" -m "$m" -f $OUT/smollm2_special.txt --ids --no-escape --no-parse-special --log-disable 2>/dev/null \
    > $OUT/smollm2_special.$pre.noparse.ids
  "$BIN" -m "$m" -f $OUT/smollm2_invalid_utf8.txt --ids --no-escape --log-disable 2>/dev/null > $OUT/smollm2_invalid_utf8.$pre.ids
  "$BIN" -m "$m" -f "$WIKI" --ids --no-escape --log-disable 2>/dev/null > "$TMP/wiki.ids"
  # count, FNV-1a 64 over the ids as little-endian int32, first and last 200
  "$PY" - "$TMP/wiki.ids" > $OUT/smollm2_wikitext2_test.$pre.summary <<'PYEOF'
import json, sys
ids = json.load(open(sys.argv[1]))
h = 0xcbf29ce484222325
for i in ids:
    for b in int(i).to_bytes(4, "little", signed=True):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
print("count %d\nfnv1a64 %016x" % (len(ids), h))
print("first200 " + " ".join(map(str, ids[:200])))
print("last200 " + " ".join(map(str, ids[-200:])))
PYEOF
done
"$BIN" --version 2>&1 | head -1
