"""Config validation: good configs expand to cells; every malformed one is refused naming its key."""
import copy
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, small_config
from rmtbench.config import ConfigError, load_sweep


def _exp(config):
    return config["experiments"][0]


def _set(path, value):
    """A small config with the value at ``path`` (a tuple of keys / indices) replaced."""
    config = small_config()
    target = config
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return config


_DELETE = object()
E = ("experiments", 0)
G = ("experiments", 0, "grid")

BAD_CONFIGS = [
    # (id, config, text that must appear in the message)
    ("unknown top-level key", {**small_config(), "sweeep": "x"}, "sweeep"),
    ("unknown experiment key", _set(E + ("seeds_",), 3), "seeds_"),
    ("unknown grid axis", _set(G + ("depth",), [2]), "depth"),
    ("missing grid axis", _set(G + ("n",), _DELETE), "'n' is required"),
    ("wrong type of n", _set(G + ("n",), ["many"]), "experiments[0].grid.n[0]"),
    ("negative n", _set(G + ("n",), [-5]), "experiments[0].grid.n[0]"),
    ("zero n", _set(G + ("n",), [0]), "experiments[0].grid.n[0]"),
    ("string in d_over_n", _set(G + ("d_over_n",), [0.5, "two"]), "experiments[0].grid.d_over_n[1]"),
    ("zero d_over_n", _set(G + ("d_over_n",), [0.0]), "experiments[0].grid.d_over_n[0]"),
    ("empty grid list", _set(G + ("activation",), []), "experiments[0].grid.activation"),
    ("unknown activation", _set(G + ("activation",), ["relu", "rleu"]), "experiments[0].grid.activation[1]"),
    ("unknown weight law", _set(G + ("weights",), ["gaussain"]), "experiments[0].grid.weights[0]"),
    ("ternary eps 1", _set(G + ("weights",), [{"law": "ternary", "eps": 1.0}]), "experiments[0].grid.weights[0]"),
    ("ternary eps negative", _set(G + ("weights",), [{"law": "ternary", "eps": -0.1}]), "eps"),
    ("unknown data set", _set(G + ("dataset",), ["nope"]), "experiments[0].grid.dataset[0]"),
    ("unknown data-set kind", _set(("datasets", "g", "kind"), "gmmm"), "datasets.g.kind"),
    ("seeds zero", _set(E + ("seeds",), 0), "experiments[0].seeds"),
    ("seeds not integer", _set(E + ("seeds",), 2.5), "experiments[0].seeds"),
    ("gamma zero", _set(E + ("gamma",), [0.1, 0.0]), "experiments[0].gamma[1]"),
    ("gamma negative", _set(E + ("gamma",), [-1.0]), "experiments[0].gamma[0]"),
    ("gamma empty", _set(E + ("gamma",), []), "experiments[0].gamma"),
    ("unknown experiment kind", _set(E + ("kind",), "rf_ridg"), "experiments[0].kind"),
    ("duplicate experiment names", {**small_config(), "experiments": [_exp(small_config()), _exp(small_config())]}, "duplicate experiment name"),
    ("results escapes the project", {**small_config(), "results": "../elsewhere"}, "results"),
    ("absolute results path", {**small_config(), "results": "/tmp/x"}, "results"),
    ("sweep name with a slash", {**small_config(), "sweep": "a/b"}, "sweep"),
    ("block_rows not a multiple of 512", {**small_config(), "compute": {"block_rows": 700}}, "compute.block_rows"),
    ("dask address missing", {**small_config(), "dask": {"mode": "address"}}, "dask.address"),
    ("duplicate values on an axis", _set(G + ("n",), [64, 64]), "experiments[0].grid.n"),
    ("no experiments", {**small_config(), "experiments": []}, "experiments"),
]


@pytest.mark.parametrize("config,needle", [pytest.param(c, t, id=i) for i, c, t in BAD_CONFIGS])
def test_malformed_configs_are_rejected_naming_the_key(config, needle):
    for kind_checks in (True, False):  # jobs skip only the kinds' own checks, never these
        with pytest.raises(ConfigError) as info:
            load_sweep(config, kind_checks=kind_checks)
        assert needle in str(info.value)
        assert len(str(info.value).split("': ", 1)[-1]) >= 20, str(info.value)  # what is wrong or allowed


def test_unknown_activation_message_lists_the_allowed_values():
    with pytest.raises(ConfigError, match=r"relu.*erf|erf.*relu"):
        load_sweep(_set(G + ("activation",), ["rleu"]))


def test_good_config_expands_to_cells_with_stable_ids():
    sweep = load_sweep(small_config())
    cells = sweep.experiments["rf"].cells
    assert [c.point["d_over_n"] for c in cells] == [0.5, 2.0]
    assert len({c.id for c in cells}) == 2
    again = load_sweep(copy.deepcopy(small_config()))
    assert [c.id for c in again.experiments["rf"].cells] == [c.id for c in cells]
    # defaults are filled and take part in the id: writing a default explicitly changes nothing
    explicit = small_config()
    explicit["datasets"]["g"]["mean_scale"] = 2.5
    assert [c.id for c in load_sweep(explicit).experiments["rf"].cells] == [c.id for c in cells]
    # changing something that matters changes the id
    other = small_config(seed=8)
    assert not set(c.id for c in load_sweep(other).experiments["rf"].cells) & set(c.id for c in cells)
    assert cells[0].label == "relu-gaussian-g-n64-d_over_n0.5"


def test_compute_settings_do_not_change_cell_ids():
    base = [c.id for c in load_sweep(small_config()).experiments["rf"].cells]
    bigger = [c.id for c in load_sweep(small_config(compute={"block_rows": 4096})).experiments["rf"].cells]
    assert base == bigger


def test_d_values_share_their_data_and_theory():
    cells = load_sweep(small_config()).experiments["rf"].cells
    exp = load_sweep(small_config()).experiments["rf"].kind
    assert exp.theory_key(cells[0]) == exp.theory_key(cells[1])


def test_yaml_tags_are_never_executed(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("sweep: !!python/object/apply:os.system ['echo pwned']\nexperiments: []\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_sweep(path)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "config").glob("*.yaml")))
def test_shipped_configs_are_valid(name):
    sweep = load_sweep(ROOT / "config" / name, project_dir=ROOT)
    assert sum(len(plan.cells) for plan in sweep.experiments.values()) > 0


def test_cli_reports_a_bad_config_in_one_line_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_set(G + ("activation",), ["rleu"])))
    result = subprocess.run([sys.executable, "-m", "rmtbench", "validate", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "experiments[0].grid.activation[0]" in result.stderr


def test_generated_schema_and_reference_are_up_to_date():
    from rmtbench.schema_doc import config_reference, schema_yaml

    assert (ROOT / "workflow/schemas/config.schema.yaml").read_text() == schema_yaml(), "run `make schema`"
    assert (ROOT / "docs/config-reference.md").read_text() == config_reference(), "run `make schema`"


def test_scientific_notation_is_a_number_in_yaml_json_and_snakemake_configs(tmp_path):
    text = yaml.safe_dump(small_config()).replace("- 0.1", "- 1e-1")
    assert "1e-1" in text
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert load_sweep(path).experiments["rf"].cells[0]["gamma"] == [0.1]
    # a mapping parsed by YAML 1.1 rules (as Snakemake does) carries the string '1e-1'
    config = small_config()
    config["experiments"][0]["gamma"] = ["1e-1"]
    assert load_sweep(config).experiments["rf"].cells[0]["gamma"] == [0.1]
    # the resolved sweep.json written by the workflow reads back identically
    json_path = tmp_path / "sweep.json"
    json_path.write_text(__import__("json").dumps({**small_config(), "experiments": [{**small_config()["experiments"][0], "gamma": [1e-10]}]}))
    assert load_sweep(json_path).experiments["rf"].cells[0]["gamma"] == [1e-10]
