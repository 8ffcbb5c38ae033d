"""Conditional generation with an unconditional score: classifier guidance and inpainting. Each
conditional score is again a ``score_fn(x, t)``."""

from scoresde.conditional.guidance import classifier_guidance
from scoresde.conditional.inpaint import INPAINT_METHODS, InpaintInfo, inpaint

__all__ = ["INPAINT_METHODS", "InpaintInfo", "classifier_guidance", "inpaint"]
