#!/bin/bash
# SLURM job array: convert every SEG under INPUT_DIR to NIfTI under OUTPUT_DIR, one shard per array task.
#
#   INPUT_DIR=/archive/segs OUTPUT_DIR=/scratch/nifti sbatch examples/slurm_array.sh
#
# Each task runs `batch --shard auto`: shard (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP
# of SLURM_ARRAY_TASK_COUNT, so any --array range works (0-7, 1-8, 0-14:2). Each task keeps its own manifest
# (no file locking across cluster nodes needed). Re-submit the same script (or `scontrol requeue JOBID_TASK`)
# after a failure or a pre-emption: items done and verified by checksum are skipped, an item a killed task
# left half-done runs again, failed items run again only with RETRY_FAILED=1.
# Exit status per task: 0 all its items done, 1 some failed (see FAILED lines / the manifest), 2 usage error.
#SBATCH --job-name=seg-to-nifti
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=02:00:00
#SBATCH --requeue
set -euo pipefail
: "${INPUT_DIR:?set INPUT_DIR}" "${OUTPUT_DIR:?set OUTPUT_DIR}"
MONAI_DICOMSEG=${MONAI_DICOMSEG:-monai-dicomseg}   # e.g. "python -m monai_dicomseg"
mkdir -p "$OUTPUT_DIR/manifests"
exec $MONAI_DICOMSEG batch to-nifti "$INPUT_DIR" "$OUTPUT_DIR" --recursive \
    --shard auto --manifest "$OUTPUT_DIR/manifests/task-${SLURM_ARRAY_TASK_ID}.jsonl" \
    --workers "${SLURM_CPUS_PER_TASK:-1}" ${RETRY_FAILED:+--retry-failed}
