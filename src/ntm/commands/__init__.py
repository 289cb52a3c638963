"""The `ntm` command: `cli` builds the parser and runs `train` and `eval`; `sweep` (a package), `reproduce`
and `pretrained` add their sub-commands to it. `train_flags` makes the flags of `ntm train` from the
dataclasses (for `ntm train` and `ntm sweep`), and `usage` holds what every command shares (the one-line
usage error). The console script is `ntm.commands.cli:main`.
"""
