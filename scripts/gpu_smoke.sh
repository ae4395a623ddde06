#!/usr/bin/env bash
# GPU smoke test at the 7B layer widths (few layers, bf16): build, alignment, SFT, gDPO packed vs
# stock DPO, generation with audio; prints one JSON line. See scripts/gpu_smoke.py.
#   bash scripts/gpu_smoke.sh            # one GPU, <= 10 minutes
#   bash scripts/gpu_smoke.sh --cpu      # tiny widths on a CPU (CI)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python}"
if [[ -x "$here/../.venv/bin/python" && -z "${PYTHON:-}" ]]; then python="$here/../.venv/bin/python"; fi
export DISABLE_VERSION_CHECK="${DISABLE_VERSION_CHECK:-1}" TOKENIZERS_PARALLELISM=false
exec "$python" "$here/gpu_smoke.py" "$@"
