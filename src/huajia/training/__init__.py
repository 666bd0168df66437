"""Learning: the embedded base model's recipe (and, later, LoRA and RL trainers)."""
