"""The language-model lab: a tiny character-level transformer, token-level KD, its jobs and its command line."""
