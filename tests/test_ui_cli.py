"""`argtree ui`: registered, documented, and the streamlit command line it runs."""

from __future__ import annotations

from click.testing import CliRunner

from argtree.cli import main


def test_ui_is_listed_and_documented():
    out = CliRunner().invoke(main, ["--help"]).output
    assert "ui" in out and "oracle's web app" in out
    res = CliRunner().invoke(main, ["ui", "--help"])
    assert res.exit_code == 0
    assert "--port" in res.output and "--host" in res.output and "argtree users add" in res.output


def test_streamlit_command_line():
    from argtree.commands.ui import APP, streamlit_command

    cmd = streamlit_command(8765, "127.0.0.1")
    assert APP.name == "app.py" and APP.exists()
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == str(APP)
    flags = dict(zip(cmd[5::2], cmd[6::2]))
    assert flags["--server.port"] == "8765" and flags["--server.address"] == "127.0.0.1"
    assert flags["--server.headless"] == "true" and flags["--client.showErrorDetails"] == "none"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert flags["--runner.postScriptGC"] == "false"  # a full GC per rerun was most of the answer latency


def test_ui_rejects_a_bad_port():
    res = CliRunner().invoke(main, ["ui", "--port", "0"])
    assert res.exit_code == 2 and "port" in res.output.lower()


def test_ui_timeout_needs_the_openai_backend_and_reaches_the_app(monkeypatch):
    monkeypatch.delenv("ARGTREE_UI_BACKEND", raising=False)
    res = CliRunner().invoke(main, ["ui", "--timeout", "5"])
    assert res.exit_code != 0 and "--backend openai" in res.output
    # The app builds its model from the variables the command sets: the openai options reach the backend.
    import oracle_ui.data as data

    monkeypatch.setenv("ARGTREE_UI_BACKEND", "fake")
    monkeypatch.setenv("ARGTREE_UI_TIMEOUT", "5")
    monkeypatch.setattr(data, "_backends", {})
    try:
        data.model_backend()
    except data.ModelUnavailable as err:  # the fake backend takes no timeout: said, not ignored
        assert "timeout" in str(err)
    else:
        raise AssertionError("a timeout for the fake backend was silently ignored")
