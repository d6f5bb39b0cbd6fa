"""The Jupyter configuration of `dev.py lab` and `dev.py app` (notebooks/app/jupyter/config), checked as data:
the upload limit matches the explorers', Voila culls only kernels without an open tab, JupyterLab's news
toast and update check are off by a settings override, and the commands carry no deprecated syntax."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import dev  # noqa: E402
from anyres_tutorial.widgets.common import UPLOAD_LIMIT_MB  # noqa: E402


def _load(name: str) -> dict:
    return json.loads((dev.JUPYTER_CONFIG / name).read_text())


def test_upload_limit_is_the_explorers():
    assert dev.UPLOAD_LIMIT_MB == UPLOAD_LIMIT_MB
    limit = UPLOAD_LIMIT_MB * 1024 * 1024
    assert _load("voila.json")["Voila"]["tornado_settings"]["websocket_max_message_size"] == limit
    server = _load("jupyter_server_config.json")["ServerApp"]["tornado_settings"]
    assert server["websocket_max_message_size"] == limit


def test_voila_culls_closed_pages_only():
    cull = _load("voila.json")["MappingKernelManager"]
    assert cull["cull_idle_timeout"] >= 300 and 0 < cull["cull_interval"] <= cull["cull_idle_timeout"]
    assert cull["cull_connected"] is False  # a kernel with an open tab (a websocket) is never culled


def test_news_and_update_checks_are_off():
    over = _load("labconfig/default_setting_overrides.json")["@jupyterlab/apputils-extension:notification"]
    assert over == {"fetchNews": "false", "checkForUpdates": False}


def test_commands_use_the_config_path_and_no_dict_syntax(monkeypatch):
    env = dev.jupyter_env()
    assert str(dev.JUPYTER_CONFIG) in env["JUPYTER_CONFIG_PATH"].split(":")
    for cmd in (dev.lab_command("python"), dev.app_command("python", "0.0.0.0", 8866)):
        assert not any("={" in c for c in cmd), cmd  # traitlets 5 deprecates --X.dict={...}
    app = dev.app_command("python", "0.0.0.0", 8866)
    assert "--Voila.ip=0.0.0.0" in app and "--port=8866" in app
    assert dev.app_env(present=True)["ANYRES_PRESENT"] == "1"
    monkeypatch.delenv("ANYRES_PRESENT", raising=False)
    assert "ANYRES_PRESENT" not in dev.app_env()


def test_present_flag_starts_the_explorers_in_presentation_mode():
    """``dev.py app --present`` puts ANYRES_PRESENT=1 into the server's environment; the app's kernel
    inherits it and every explorer starts presenting."""
    import subprocess

    code = ("from anyres_tutorial.widgets import TilingExplorer, PackingExplorer\n"
            "t, p = TilingExplorer(), PackingExplorer()\n"
            "print(t.presentation.value, p.presentation.value, 'anyres-present' in t.widget._dom_classes)")
    env = dict(dev.app_env(present=True), MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["True", "True", "True"], out.stderr[-2000:]
