#!/usr/bin/env bash
# Reproduce the shipped tiny weights (mad_sim/weights/tiny*.safetensors + MODEL_CARD.md).
#
# Each stage writes runs/tiny/<stage>/{checkpoints,losses.json,loss.png,final/};
# an interrupted stage continues bit-exactly with the same command plus --resume.
#
#   scripts/train_tiny.sh                 vae, base, motion, appearance; evaluate; ship
#   STAGES="motion" scripts/train_tiny.sh one stage (the others' finals must exist)
#
# As shipped: vae and base ran alone on the machine's 2 cores (2 threads); motion
# and appearance ran side by side on one thread each; see MODEL_CARD.md for
# steps, losses and wall minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STAGES="${STAGES:-vae base motion appearance}"
for stage in $STAGES; do
  case "$stage" in
    vae)  mad-sim -v train vae --config configs/train/tiny_vae.yaml --no-progress ;;
    base) mad-sim -v train base --config configs/train/tiny_base.yaml --no-progress ;;
    motion) mad-sim -v train motion --config configs/train/tiny_motion.yaml --no-progress ;;
    appearance)
      python -m mad_sim.model.training.appearance_train --config configs/train/tiny_appearance.yaml --no-progress
      # as shipped: the 600-step run was then continued to 1500 steps (the cosine schedule re-spans 1500)
      mad-sim train appearance --config configs/train/tiny_appearance.yaml --resume --steps 1500 --no-progress
      python -m mad_sim.model.training.appearance_train --config configs/train/tiny_appearance.yaml \
        --targeted-noise false --output-dir runs/tiny/appearance_no_tn --no-progress ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
# held-out evaluations (outside the repo), then ship the weights (backbone, both adapters) and write the model card
python -m mad_sim.model.evaluation.motion --backbone runs/tiny/base/final/tiny.safetensors \
  --lora runs/tiny/motion/final/tiny_motion.safetensors --config configs/train/tiny_motion.yaml \
  --out runs/tiny/eval
python -m mad_sim.model.training.appearance_train --config configs/train/tiny_appearance.yaml \
  --score targeted_noise=runs/tiny/appearance/final/tiny_appearance.safetensors \
  no_targeted_noise=runs/tiny/appearance_no_tn/final/tiny_appearance.safetensors --out runs/tiny/appearance_eval
python -m mad_sim.model.evaluation.model_card --runs runs/tiny --out mad_sim/weights --evaluation runs/tiny/eval/motion_eval.json \
  --appearance runs/tiny/appearance_eval/scores.json
