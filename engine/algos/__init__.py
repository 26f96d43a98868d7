"""One readable file per algorithm: grpo.py (around trl.GRPOTrainer) and ppo.py."""
