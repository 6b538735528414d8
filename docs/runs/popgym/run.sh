#!/usr/bin/env bash
# POPGym through `memup up`: MemUP (memory + PPO heads) and the PPO-LSTM baseline, same
# budget (3 M env steps, or 90% of 200 episodes returning >= 0.9, whichever comes first),
# seeds 1..3; then `memup eval` of each final policy on 200 fresh episodes.
# Usage (repository root): bash docs/runs/popgym/run.sh [env ...]   env: repeat_previous count_recall
set -u
out=docs/runs/popgym
envs=${*:-repeat_previous count_recall}
for seed in 1 2 3; do
  for env in $envs; do
    for variant in "" _lstm; do
      name="popgym-${env//_/-}${variant//_/-}-s$seed"
      [ -f "$out/$name/eval.json" ] && continue
      python3 -m cli.main up --config "configs/up_popgym_${env}${variant}.toml" \
        --set run.name="$name" --set run.seed="$seed" --set ppo.max_env_steps=3000000 \
        > "/tmp/$name.log" 2>&1
      mkdir -p "$out/$name"
      tail -3 "/tmp/$name.log" > "$out/$name/summary.txt"
      cp "runs/$name/metrics.jsonl" "runs/$name/config.json" "$out/$name/"
      python3 -m cli.main eval "runs/$name" --episodes 200 --json > "$out/$name/eval.json"
    done
  done
done
