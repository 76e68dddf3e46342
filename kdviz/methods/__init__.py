"""Distillation methods: the registry, the objective, adapters and schedules."""
