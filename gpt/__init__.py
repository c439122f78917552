"""A character-level GPT built up phase by phase and trained on War and Peace."""
