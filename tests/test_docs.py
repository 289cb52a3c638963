"""Runs the code of docs/using.md, block after block, so the page stays true: the classifier learns,
saving and loading give back the same outputs, the pretrained example draws its picture, and the
example task of one's own (docs/examples/parity.py) is found by its name."""

import re
from pathlib import Path

import pytest
from flax import nnx

import ntm
from ntm import saving, tasks

REPO = Path(__file__).resolve().parent.parent
USING = REPO / "docs" / "using.md"


@pytest.mark.slow  # the classifier learns for 400 steps
def test_every_code_block_of_using_md_runs(tmp_path, monkeypatch):
    # The page uses ntm.pretrained("copy"); an untrained copy model stands in for the shipped one.
    root = tmp_path / "pretrained"
    monkeypatch.setattr(saving, "PRETRAINED_ROOT", root)
    task = tasks.get("copy")
    stand_in = ntm.NTM(ntm.NTMConfig(input_size=task.input_size, output_size=task.output_size), rngs=nnx.Rngs(0))
    saving.add_pretrained("copy", stand_in, task="copy", training_sequences=0, wall_time=0.0, eval_key="length",
                          eval_rows=[])
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO))  # docs.examples.parity, as from the repository's root
    blocks = re.findall(r"```python\n(.*?)```", USING.read_text(), flags=re.S)
    assert len(blocks) == 5
    namespace = {"__name__": "using_md"}
    for block in blocks:
        exec(compile(block, str(USING), "exec"), namespace)
    assert namespace["accuracy"] > 0.9
    assert (tmp_path / "copy-trace.png").stat().st_size > 10_000
    assert (tmp_path / "classifier-ntm" / "model.json").is_file()
    assert namespace["batch"].inputs.shape == (4, 6, 1) and namespace["settings"].task == "docs.examples.parity:Parity"
