#!/usr/bin/env bash
# Packs what the device run needs into .work/dev (under the device tool's 64 MiB carry limit):
# the gpu_prepare.sh output with the binary xz-compressed, transformers and its dependencies as
# Python 3.12 wheels, and .work/dev/run.sh, the command to run there (the trainer benchmark,
# scripts/gpu_train_bench.sh, then the engine check, scripts/gpu_check.sh):
#   scripts/gpu_prepare.sh && scripts/gpu_device_pack.sh
#   device run: `bash .work/dev/run.sh`, carrying .work/dev
set -euo pipefail
cd "$(dirname "$0")/.."
D=.work/dev
rm -rf "$D" && mkdir -p "$D/wheels"
cp -r .work/gpu/clip_llama .work/gpu/interleave .work/gpu/bench_transformers.py "$D/"
xz -T2 -6 -c .work/gpu/vila2 > "$D/vila2.xz"
.venv/bin/pip download --quiet --disable-pip-version-check --only-binary=:all: \
  --python-version 3.12 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform any -d "$D/wheels" -r tests/parity/requirements.txt
# Command-line extras of huggingface_hub that the benchmark never imports.
rm -f "$D"/wheels/{hf_xet,pygments,rich,markdown_it,mdurl,typer,click,shellingham}*
cat > "$D/run.sh" <<'RUN'
#!/usr/bin/env bash
set -u
PY=${PYTHON:-/opt/torch/.venv/bin/python}
D=.work/dev
$PY -c "import lzma, shutil; shutil.copyfileobj(lzma.open('$D/vila2.xz'), open('$D/vila2', 'wb'))" && chmod +x $D/vila2
$PY -m pip install --quiet --no-index --no-deps --target /tmp/tf $D/wheels/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/tf
mkdir -p "$OUT"
# The trainer benchmark first, then the engine's parity and generation check; each bounded so
# that what finished comes back even when the other runs long.
OUT=$OUT PYTHON=$PY timeout "${TRAIN_TIMEOUT:-300}" bash scripts/gpu_train_bench.sh $D 2>&1 | tee "$OUT/train.log"
[ "${RUN_CHECK:-1}" = 0 ] || OUT=$OUT PYTHON=$PY timeout "${CHECK_TIMEOUT:-200}" bash scripts/gpu_check.sh $D 2>&1 | tee "$OUT/gpu_check.log"
# The device tool brings back a few files only: everything in one archive.
tar czf /tmp/results.tgz -C "$OUT" . && find "$OUT" -mindepth 1 -delete && mv /tmp/results.tgz "$OUT/"
RUN
du -sh "$D"
