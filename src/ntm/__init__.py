"""ntm: Neural Turing Machines that train, in JAX and Flax NNX.

The public surface: the NTM (`NTMConfig`, `NTMCell`, `NTM`), its pure maths (`ntm.addressing`,
`ntm.memory`), controllers (`ntm.controllers`), the DNC (`DNCConfig`, `DNCCell`, `DNC`), what
every model shares (`SequenceModel`, `count_params`), saving and loading (`save`, `load`,
`pretrained`), and `runtime.tune_malloc` for CPU speed.

The NTM's modules live in `ntm.turing`, beside `ntm.dnc` and `ntm.baselines`. `ntm.addressing`,
`ntm.memory` and `ntm.controllers` were top-level modules before that move and are public, so they
are registered under their old names too: `import ntm.addressing` and `from ntm.memory import read`
keep working and give the very same module objects as `ntm.turing.addressing` and `ntm.turing.memory`.
"""

import sys

from ntm import runtime
from ntm.dnc import DNC, DNCCell, DNCConfig, DNCState
from ntm.saving import load, pretrained, save
from ntm.sequence import SequenceModel, count_params
from ntm.turing import NTM, NTMCell, NTMConfig, NTMState, NTMStepTrace, addressing, controllers, memory

# The public modules' names from before the move (see above), for code written against them.
sys.modules.update({"ntm.addressing": addressing, "ntm.controllers": controllers, "ntm.memory": memory})

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
