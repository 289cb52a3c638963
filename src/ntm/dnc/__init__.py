"""The Differentiable Neural Computer (Graves et al., Nature 2016), ntm's second memory model.

`DNCConfig` holds its sizes, `DNCCell` is one step (an `nnx.RNNCellBase`), `DNC` is the
sequence layer with `ntm.NTM`'s interface, and `ntm.dnc.addressing` holds its pure maths.
"""

from ntm.dnc.cell import DNC, DNCCell, DNCInterface, DNCState, DNCStepTrace
from ntm.dnc.config import DNCConfig

__all__ = ["DNC", "DNCCell", "DNCConfig", "DNCInterface", "DNCState", "DNCStepTrace"]
