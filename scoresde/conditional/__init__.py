"""Conditional generation: classifier guidance and inpainting with an unconditional score,
classifier-free guidance with a class-conditional one. Each conditional score is again a
``score_fn(x, t)``."""

from scoresde.conditional.guidance import classifier_free_guidance, classifier_guidance
from scoresde.conditional.inpaint import INPAINT_METHODS, InpaintInfo, inpaint

__all__ = ["INPAINT_METHODS", "InpaintInfo", "classifier_free_guidance", "classifier_guidance", "inpaint"]
