#!/bin/sh
# The programs as a hostile user runs them (issue 18): standard output on a
# full disk, a pipe, a link or a directory where a file should go, bad
# arguments. Run by `make test` on the built binaries: tests/programs.sh [BUILD]
# A pipe stands for any device: a regression run as root must not replace
# a real one. Prints "programs: N passed, N failed, N skipped"; exit 1 on a failure.
B=${1:-build}
DATA=${W4A8_DATA:-../shared/data}
T=$B/programs.tmp
pass=0 fail=0 skip=0
E=$T/err # what the last command said; one file per concurrent runner
rm -rf "$T" && mkdir -p "$T" || exit 1

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "    FAIL programs: $*"; sed 's/^/        /' "$E"; }

# expect RC TEXT CMD...: CMD exits RC and says TEXT on stderr.
expect() {
    want=$1 text=$2
    shift 2
    "$@" >"$T/out" 2>"$E"
    rc=$?
    if [ "$rc" = "$want" ] && { [ -z "$text" ] || grep -qF -- "$text" "$E"; }; then ok; else bad "$* exited $rc (want $want, saying '$text')"; fi
}

# full RC CMD...: CMD with standard output on /dev/full exits non-zero, says so.
full() {
    "$@" >/dev/full 2>"$E"
    rc=$?
    if [ "$rc" != 0 ] && grep -q "cannot write standard output" "$E"; then ok; else bad "$* >/dev/full exited $rc"; fi
}

# The slow ones (seconds of work before their output) run meanwhile.
(E=$T/err1; full "$B/quickstart"; echo "$pass $fail" >"$T/slow1") &
slow1=$!
(E=$T/err2; full "$B/w4a8_bench" --quick; echo "$pass $fail" >"$T/slow2") &
slow2=$!

# Lost standard output: every program.
full "$B/llama_w4a8" --help
full "$B/llama_qat" --help
full "$B/w4a8_heatmap" --help
expect 0 "" "$B/llama_w4a8" --help

# llama_w4a8's command line, before anything is loaded.
M="--model x --tokenizer y --text z"
expect 2 "unknown option '--bogus'" "$B/llama_w4a8" --bogus
expect 2 "unknown option '--bogus'" "$B/llama_w4a8" $M --bogus 1
expect 2 "--methods '': an empty item" "$B/llama_w4a8" $M --methods ""
expect 2 "--methods 'rtn,': an empty item" "$B/llama_w4a8" $M --methods rtn,
expect 2 "bad method 'fptq:token'" "$B/llama_w4a8" $M --methods fptq:token
expect 2 "longer than 63 characters" "$B/llama_w4a8" $M \
    --group 000000000000000000000000000000000000000000000000000000000000032garbage
expect 1 "build: cannot open or read the file" "$B/llama_w4a8" --model "$B" --tokenizer y --text z
expect 2 "bad --kv '3'" "$B/llama_w4a8" $M --kv 3
expect 2 "bad --kv '8,'" "$B/llama_w4a8" $M --kv 8,
expect 2 "bad --kv '4b'" "$B/llama_w4a8" $M --kv 4b

# Targets that are not regular files stay what they were.
mkfifo "$T/fifo" && ln -s target.md "$T/link" && mkdir "$T/dir" || exit 1
expect 2 "--table $T/fifo: will not write it: not a regular file" "$B/llama_w4a8" $M --table "$T/fifo"
expect 2 "--table $T/link: will not write it: a symbolic link" "$B/llama_w4a8" $M --table "$T/link"
expect 2 "--table $T/dir: will not write it: Is a directory" "$B/llama_w4a8" $M --table "$T/dir"
printf '\000\000\200\077\000\000\000\100' >"$T/x.f32"
expect 1 "cannot write $T/fifo: not a regular file" "$B/w4a8_heatmap" --raw "$T/x.f32" --shape 1,2 -o "$T/fifo"
expect 1 "cannot write $T/link: a symbolic link" "$B/w4a8_heatmap" --raw "$T/x.f32" --shape 1,2 -o "$T/link"
expect 1 "cannot read $T/dir: Is a directory" "$B/w4a8_heatmap" --raw "$T/dir" --shape 1,2 -o "$T/x.png"
if [ -p "$T/fifo" ] && [ -L "$T/link" ] && [ -d "$T/dir" ] && [ ! -e "$T/target.md" ]; then ok; else
    bad "a target was replaced or written through"; fi

# With a model: --calib names the file it cannot read.
if [ -f "$DATA/stories260K.bin" ] && [ -f "$DATA/tok512.bin" ] && [ -f "$DATA/tinystories_valid_first1000.txt" ]; then
    expect 1 "--calib $T/none.txt: cannot open or read the file" "$B/llama_w4a8" --model "$DATA/stories260K.bin" \
        --tokenizer "$DATA/tok512.bin" --text "$DATA/tinystories_valid_first1000.txt" --calib "$T/none.txt"
    S="--model $DATA/stories260K.bin --tokenizer $DATA/tok512.bin --text $DATA/tinystories_valid_first1000.txt"
    expect 1 "--qat $DATA/tok512.bin: " "$B/llama_w4a8" $S --qat "$DATA/tok512.bin"
    expect 1 "not the shape of" "$B/llama_w4a8" $S --qat "$DATA/babyllama_tok105_model5000.bin"
    # The llm-qat path of the model itself is the rtn:token row: same PPL, KL,
    # top-1 and KV columns (all but the name and the quantization time).
    expect 0 "" "$B/llama_w4a8" $S --qat "$DATA/stories260K.bin:32" --methods rtn:token --group 32 \
        --variants original --windows 2 --calib-seqs 2 --sample 0 --kv 8,4a
    rows=$(awk -F'|' '$2 ~ /^ (rtn|llm-qat) $/ { $2 = ""; $12 = ""; print }' "$T/out" | sort -u | wc -l)
    if [ "$rows" = 1 ] && grep -q '^| llm-qat | 32 |.*|.*(.*%) |.*(.*%) |$' "$T/out"; then ok; else
        bad "--qat of the model itself: llm-qat and rtn:token rows differ"; echo "$rows"; cat "$T/out"; fi
else
    echo "programs: skipped: --calib with a model: no data at $DATA (set W4A8_DATA)"
    skip=$((skip + 1))
fi

wait $slow1 $slow2
for f in "$T/slow1" "$T/slow2"; do
    if [ -f "$f" ]; then read -r p q <"$f"; pass=$((pass + p)); fail=$((fail + q)); else fail=$((fail + 1)); fi
done
echo "programs: $pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ] && rm -rf "$T"
[ "$fail" = 0 ]
