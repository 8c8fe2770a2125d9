#!/bin/bash
# torchrun: NPROC local processes (or nodes x processes with --nnodes/--rdzv-endpoint), process RANK runs shard
# RANK of WORLD_SIZE. They share one manifest (appends are flock-ed; use a local or lock-safe file system).
#
#   INPUT_DIR=segs OUTPUT_DIR=nifti NPROC=4 examples/torchrun_batch.sh
set -euo pipefail
: "${INPUT_DIR:?set INPUT_DIR}" "${OUTPUT_DIR:?set OUTPUT_DIR}"
mkdir -p "$OUTPUT_DIR"
exec "${TORCHRUN:-torchrun}" --standalone --nproc_per_node="${NPROC:-4}" -m monai_dicomseg \
    batch to-nifti "$INPUT_DIR" "$OUTPUT_DIR" --recursive --shard auto --manifest "$OUTPUT_DIR/manifest.jsonl"
