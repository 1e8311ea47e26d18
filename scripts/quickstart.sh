#!/usr/bin/env bash
# The main job end to end on shipped data: install, fine-tune MiniLM on Rotten Tomatoes,
# evaluate on its held-out test split, write the model directory to runs/rt-minilm.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
echo "== exporting Rotten Tomatoes (stratified 80/10/10, seed 13) to data/rotten_tomatoes"
.venv/bin/lmworks datasets export rotten_tomatoes --output data/rotten_tomatoes
echo "== fine-tuning (about 8 minutes on 2 CPU cores)"
.venv/bin/lmworks train data/rotten_tomatoes/train.csv --eval data/rotten_tomatoes/dev.csv \
  --output runs/rt-minilm
echo "== held-out test report"
.venv/bin/lmworks evaluate runs/rt-minilm data/rotten_tomatoes/test.csv --json runs/rt-minilm-test.json
echo "== predictions for the test split: runs/rt-minilm-test-predictions.csv"
.venv/bin/lmworks predict runs/rt-minilm data/rotten_tomatoes/test.csv \
  --output runs/rt-minilm-test-predictions.csv --quiet
