"""ntm: Neural Turing Machines that train, in JAX and Flax NNX.

The public surface: the NTM (`NTMConfig`, `NTMCell`, `NTM`), its pure maths (`ntm.addressing`,
`ntm.memory`), controllers (`ntm.controllers`), the DNC (`DNCConfig`, `DNCCell`, `DNC`), what
every model shares (`SequenceModel`, `count_params`), saving and loading (`save`, `load`,
`pretrained`), and `runtime.tune_malloc` for CPU speed.
"""

from ntm import runtime
from ntm.cell import NTM, NTMCell, NTMState, NTMStepTrace
from ntm.config import NTMConfig
from ntm.dnc import DNC, DNCCell, DNCConfig, DNCState
from ntm.saving import load, pretrained, save
from ntm.sequence import SequenceModel, count_params

__all__ = [
    "DNC",
    "DNCCell",
    "DNCConfig",
    "DNCState",
    "NTM",
    "NTMCell",
    "NTMConfig",
    "NTMState",
    "NTMStepTrace",
    "SequenceModel",
    "count_params",
    "load",
    "pretrained",
    "runtime",
    "save",
]
__version__ = "0.1.0"
