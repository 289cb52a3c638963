"""The `ntm` command: `cli` builds the parser and runs `train`, `eval`, `plot` and the rest; `sweep`,
`reproduce` and `pretrained` add their sub-commands to it. The console script is `ntm.commands.cli:main`.
"""
