"""Distillation methods: the registry, the objective, adapters and schedules.

Each method is one file (its pure loss and its :class:`Method` declaration) and one ``register``
line below; the order of registration is the order the app and ``python -m kdviz compare`` list
them. Everything else (the objective, default layers, adapters, the Distill page, the
comparison) reads :data:`METHODS`.
"""
from kdviz.methods import at, cosine, crd, divergences, dkd, fitnet, kd, rkd, sp
from kdviz.methods.objective import DistillConfig, Objective, Term, build_objective, default_layer
from kdviz.methods.registry import METHODS, Method, Param, register

register(kd.KD)
register(divergences.REVERSE_KL)
register(divergences.JS)
register(divergences.MSE_LOGITS)
register(fitnet.FITNET)
register(at.AT)
register(rkd.RKD_D)
register(rkd.RKD_A)
register(sp.SP)
register(dkd.DKD)
register(crd.CRD)
register(cosine.COSINE)

__all__ = ["METHODS", "DistillConfig", "Method", "Objective", "Param", "Term", "build_objective", "default_layer", "register"]
