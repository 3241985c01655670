"""scripts/sweep_sampling.py: its settings parse as documented and bad ones are refused with one sentence."""


import pytest


@pytest.fixture(scope="module")
def sweep(load_script):
    return load_script("sweep_sampling")


def test_settings_parse(sweep):
    fields = ("guidance_scale", "temperature", "top_k")
    assert sweep.parse_setting("3:1:5", fields) == {"guidance_scale": 3.0, "temperature": 1.0, "top_k": 5}
    assert sweep.parse_setting("1:0:-", fields) == {"guidance_scale": 1.0, "temperature": 0.0, "top_k": None}
    assert sweep.parse_setting("0.7:20", ("temperature", "top_k")) == {"temperature": 0.7, "top_k": 20}


@pytest.mark.parametrize("text", ["3:1", "3:1:5:2", "a:1:5", "3:1:2.5"])
def test_bad_settings_are_refused(sweep, text):
    with pytest.raises(ValueError, match="expected 3 numbers"):
        sweep.parse_setting(text, ("guidance_scale", "temperature", "top_k"))


def test_cli_error_is_one_line(sweep, capsys):
    with pytest.raises(SystemExit) as err:
        sweep.main(["--t2v", "3:x:5"])
    assert err.value.code == 2
    assert "sampling setting '3:x:5'" in capsys.readouterr().err
