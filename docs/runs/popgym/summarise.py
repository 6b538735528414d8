"""Prints the POPGym table of docs/results.md from the run logs beside this file.

Per run: env steps and PPO updates at the end (and when PPO began), the best mean return
over any 7 consecutive PPO batches (224 training episodes; POPGym's MMER takes the best
batch mean), and `memup eval` on 200 fresh episodes. Usage: python3 docs/runs/popgym/summarise.py
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent


def summarise(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    ppo = [r for r in rows if r.get("phase") == 2 and "mean_return" in r]
    returns = [r["mean_return"] for r in ppo]
    best = max(sum(returns[i:i + 7]) / 7 for i in range(max(1, len(returns) - 6)))
    memup = [r for r in rows if r.get("phase") == 1]
    evaluated = json.loads((run / "eval.json").read_text())
    # Phase II's first batch was played after phase I ended: its count bounds phase I's steps.
    return {"run": run.name, "memup_updates": memup[-1]["update"] if memup else 0,
            "phase1_env_steps": ppo[0]["env_steps"] if memup else 0,
            "ppo_updates": ppo[-1]["ppo_update"], "env_steps": ppo[-1]["env_steps"],
            "success": ppo[-1]["success"], "best_return_224": round(best, 3),
            "eval_greedy": round(evaluated["greedy"]["mean_return"], 3),
            "eval_sampled": round(evaluated["sampled"]["mean_return"], 3),
            "summary": (run / "summary.txt").read_text().strip().splitlines()[0]}


if __name__ == "__main__":
    for run in sorted(p for p in HERE.iterdir() if (p / "eval.json").exists()):
        print(json.dumps(summarise(run)))
