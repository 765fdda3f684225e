"""Command-line parsing: which arguments go to rmtbench and which to Snakemake."""
from __future__ import annotations

import pytest

from rmtbench.cli import cmd_run, parse_arguments


def test_run_options_after_the_config_are_rmtbench_s_and_snakemake_s_follow_the_double_dash() -> None:
    # Failed before the fix: everything after the config went to Snakemake, so the LocalCluster was
    # sized to every core while the tutorial's `--cores 2` reached Snakemake only.
    args = parse_arguments(["run", "my.yaml", "--cores", "2", "--", "--keep-going", "--until", "gather"])
    assert args.func is cmd_run and args.config == "my.yaml" and args.cores == 2
    assert args.snakemake_args == ["--keep-going", "--until", "gather"]
    args = parse_arguments(["run", "--cores", "1", "--", "-n"])
    assert args.config == "config/config.yaml" and args.cores == 1 and args.snakemake_args == ["-n"]
    assert parse_arguments(["run"]).snakemake_args == []


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "my.yaml", "--keep-going"],  # a Snakemake option without the -- before it
        ["validate", "my.yaml", "--", "--keep-going"],  # -- belongs to run only
    ],
)
def test_misplaced_arguments_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_arguments(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --keep-going" in err or "passed to Snakemake by `rmtbench run` only" in err
