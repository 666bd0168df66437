"""RL on critic rewards (TwiG-RL's "RL"): GRPO (DDPO-style policy gradient), Diffusion-DPO and
RAFT for SD-family UNets; ``train_rl`` runs one, resumable, and exports a pipeline or a LoRA."""
