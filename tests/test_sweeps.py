"""W&B sweep examples: the command an agent runs is this CLI's, and every parameter path is one the
CLI accepts (parsed with --print_config, no training: the sweep server is not reachable here)."""

import pytest
import yaml

from lightning_dgm.__main__ import main
from tests.helpers import REPO

SWEEPS = sorted((REPO / "configs" / "sweeps").glob("*.yaml"))


def _values(spec: dict) -> list:
    if "values" in spec:
        return spec["values"]
    if "value" in spec:
        return [spec["value"]]
    return [spec["min"], spec["max"]]  # a distribution: its bounds


def _lookup(config: dict, path: str):
    for key in path.split("."):
        config = config[key]
    return config


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda p: p.name)
def test_every_sweep_parameter_is_accepted_by_the_cli(sweep, monkeypatch, capsys):
    spec = yaml.safe_load(sweep.read_text())
    command = spec["command"]
    # ${env} python -m lightning_dgm <subcommand> ... ${args}: the agent appends --<parameter>=<value>
    assert command[:4] == ["${env}", "python", "-m", "lightning_dgm"] and command[-1] == "${args}"
    assert (REPO / spec["program"]).is_file()
    monkeypatch.chdir(REPO)  # the agent runs from the repository root: config paths are relative to it
    parameters = spec["parameters"]
    for i in range(max(len(_values(p)) for p in parameters.values())):
        point = {name: _values(p)[min(i, len(_values(p)) - 1)] for name, p in parameters.items()}
        args = [f"--{name}={value}" for name, value in point.items()]  # W&B's ${args} form
        with pytest.raises(SystemExit) as stop:
            main([*command[4:-1], *args, "--print_config"])
        assert stop.value.code in (0, None)
        printed = yaml.safe_load(capsys.readouterr().out)
        for name, value in point.items():
            assert _lookup(printed, name) == value, name
