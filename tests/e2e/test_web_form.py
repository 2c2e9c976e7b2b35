"""The web form on its own port: the page in English and Japanese, and the whole flow in a real
headless Chromium against a real `leadersboard serve` with a worker and the session's MLflow server
(token, files, Submit, the job turning ✅, its logs), with hostile names, errors and logs shown as
text and never run."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from leadersboard.local.redis_server import RedisServer
from leadersboard.webhook.web_text import TEXT, pick_language

from support.browser import Page, browser_page
from support.instances import GOOD_CONFIG, LEADERSBOARD, Instance, create_instance, unique_user
from support.platform import MLFLOW_MAIN, Platform
from support.ports import fresh_port
from support.shared import SessionMlflow

HOSTILE = "<img src=x onerror=\"document.title='pwned';alert(1)\"><script>alert(2)</script>"
# Fails on purpose, with markup in its output and in the error the platform records.
HOSTILE_MAIN = f'''def main():
    print({HOSTILE!r})
    raise ValueError({HOSTILE!r})


if __name__ == "__main__":
    main()
'''


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
             mlflow_server: SessionMlflow) -> Iterator[Platform]:
    inst = create_instance(tmp_path_factory.mktemp("web"), users=(unique_user(),))
    document = yaml.safe_load(inst.config_path.read_text())
    document["runner"].update({"heartbeat_seconds": 1, "reconcile_seconds": 1})
    inst.config_path.write_text(yaml.safe_dump(document))
    running = Platform(inst, redis_server.url, mlflow_server.url, workers=1).start()
    try:
        yield running
    finally:
        running.stop()


def web_url(platform: Platform) -> str:
    return f"http://127.0.0.1:{platform.web_port}/"


# ---------------------------------------------------------------------------------- without a browser


def test_both_languages_have_every_text() -> None:
    assert set(TEXT["en"]) == set(TEXT["ja"])
    assert all(TEXT["ja"][key] for key in TEXT["ja"])


@pytest.mark.parametrize(
    ("asked", "accept", "chosen"),
    [(None, None, "en"), (None, "ja,en;q=0.8", "ja"), (None, "en-US,ja;q=0.9", "en"), (None, "fr, ja;q=0.5", "ja"),
     (None, "ja;q=0, en", "en"), ("en", "ja", "en"), ("ja", None, "ja"), ("xx", "ja-JP", "ja"), (None, "de", "en")],
)
def test_language_choice(asked: str | None, accept: str | None, chosen: str) -> None:
    assert pick_language(asked, accept) == chosen


def test_page_is_served_in_the_asked_language_with_strict_headers(platform: Platform) -> None:
    english = httpx.get(web_url(platform), timeout=10)
    assert english.status_code == 200 and '<html lang="en">' in english.text
    assert TEXT["en"]["submit"] in english.text and TEXT["en"]["show_logs"] not in english.text.split("<script")[0]
    japanese = httpx.get(web_url(platform), headers={"Accept-Language": "ja-JP,ja;q=0.9"}, timeout=10)
    assert '<html lang="ja">' in japanese.text and TEXT["ja"]["submit"] in japanese.text
    assert '<html lang="en">' in httpx.get(web_url(platform) + "?lang=en", headers={"Accept-Language": "ja"},
                                           timeout=10).text
    policy = english.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert english.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in english.headers
    # Only the page's own script and style: nothing from another host.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", english.text)
    script = httpx.get(web_url(platform) + "static/web.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
    assert httpx.get(web_url(platform) + "static/..%2Fweb%2Findex.html", timeout=10).status_code == 404
    # The web port answers the participant API under /api only; git and the hooks stay on the API port.
    assert httpx.get(web_url(platform) + "api/jobs", timeout=10).status_code == 401
    assert httpx.get(web_url(platform) + "git/submissions.git/info/refs", timeout=10).status_code == 404


def test_serve_refuses_a_web_port_in_use(tmp_path: Path) -> None:
    inst: Instance = create_instance(tmp_path, users=())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert LEADERSBOARD
        result = subprocess.run([LEADERSBOARD, "serve", "--api-port", str(fresh_port()), "--web-port", str(port)],
                                env={"PATH": "/usr/bin:/bin", "LEADERSBOARD_HOME": str(inst.home),
                                     "LEADERSBOARD_REDIS_URL": "redis://127.0.0.1:1", "HOME": str(tmp_path)},
                                capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr


# ------------------------------------------------------------------------------------- in Chromium


def fill_form(page: Page, token: str, files: list[Path], metadata: str = "", folder: str = "") -> None:
    page.type("#token", token)
    page.set_files("#files", files)
    if folder:
        page.type("#folder", folder)
    page.type("#metadata", metadata)


def row_status(page: Page, folder: str) -> str:
    return str(page.evaluate(
        f"(() => {{ const r = [...document.querySelectorAll('#jobs tbody tr')].find(r => "
        f"r.children[1].textContent === {json.dumps(folder)}); return r ? r.dataset.status : ''; }})()"))


def test_submit_and_follow_a_job_in_chromium(platform: Platform, tmp_path: Path) -> None:
    user, token = next(iter(platform.instance.tokens.items()))
    (tmp_path / "main.py").write_text(MLFLOW_MAIN.format(auroc=0.87, f1=0.75))
    (tmp_path / "config.yaml").write_text(GOOD_CONFIG)
    with browser_page() as page:
        page.goto(web_url(platform))
        assert page.evaluate("document.documentElement.lang") == "en"
        title = page.evaluate("document.title")
        fill_form(page, token, [tmp_path / "main.py", tmp_path / "config.yaml"],
                  metadata=json.dumps({"method": "Web PaDiM", "description": HOSTILE}))
        page.click("#submit")
        accepted = page.wait_for("document.querySelector('#result.ok') && document.querySelector('#result').innerText")
        assert "web-padim" in accepted and f"users/{user}" in accepted

        # The job appears (⏳) and turns ✅ completed on its own: the list refreshes every 5 seconds.
        page.wait_for("document.querySelectorAll('#jobs tbody tr').length === 1")
        assert page.text("#jobs tbody tr td.status").startswith("⏳") or row_status(page, "web-padim") == "completed"
        page.wait_for("document.querySelector('#jobs tbody tr').dataset.status === 'completed'", timeout=120)
        assert page.text("#jobs tbody tr td.status") == "✅ completed"
        assert "AUROC 0.870" in page.text("#jobs tbody tr")

        page.click("#jobs tbody tr .show-logs")
        logs = page.wait_for("document.querySelector('#logs-text').innerText.includes('done: auroc=0.87') && "
                             "document.querySelector('#logs-text').innerText")
        assert "status: completed" in logs
        assert not page.evaluate("location.href").count(token), "the token is in the URL"
        assert page.evaluate("document.cookie") == ""

        # Japanese: the labels change, the token is remembered in the tab, the job is still there.
        page.click("#lang-ja")
        page.wait_for("document.documentElement.lang === 'ja'")
        page.wait_for("document.querySelectorAll('#jobs tbody tr').length === 1")
        assert page.text("#submit") == "提出" and page.text("label[for=token]") == "API トークン"
        assert page.text("#jobs thead").split() == ["状態", "提出", "ベンチマーク", "指標", "提出日時", "ジョブ"]
        assert page.text("#jobs tbody tr td.status") == "✅ 完了"
        assert page.text("#jobs tbody tr .show-logs") == "ログを表示"
        assert page.evaluate("document.title") == TEXT["ja"]["title"]

        assert page.dialogs == [] and page.exceptions == []
        assert title == TEXT["en"]["title"]
    assert token not in platform.log(), "the token reached the server's log"


def test_hostile_names_errors_and_logs_are_shown_as_text(platform: Platform, tmp_path: Path) -> None:
    token = next(iter(platform.instance.tokens.values()))
    (tmp_path / "main.py").write_text(HOSTILE_MAIN)
    (tmp_path / "config.yaml").write_text(GOOD_CONFIG)
    with browser_page() as page:
        page.goto(web_url(platform) + "?lang=en")
        title = page.evaluate("document.title")

        # A folder name full of markup is refused; the refusal quotes it, as text.
        fill_form(page, token, [tmp_path / "main.py", tmp_path / "config.yaml"], folder=HOSTILE)
        page.click("#submit")
        error = page.wait_for("document.querySelector('#result.error') && document.querySelector('#result').innerText")
        assert "Refused (400)" in error and "[folder-name]" in error and "<img src=x" in error
        assert page.evaluate("document.querySelectorAll('#result img, #result script').length") == 0

        # A job whose output and error are markup: listed ❌ with its error, logs as text.
        page.evaluate("document.querySelector('#folder').value = ''")
        page.type("#metadata", json.dumps({"method": "hostile", "description": HOSTILE}))
        page.click("#submit")
        page.wait_for("document.querySelector('#result.ok, #result.error')")
        assert page.evaluate("document.querySelector('#result').className") == "ok", page.text("#result")
        page.wait_for("[...document.querySelectorAll('#jobs tbody tr')].some(r => r.dataset.status === 'failed')",
                      timeout=120)
        failed = page.evaluate("[...document.querySelectorAll('#jobs tbody tr')]"
                               ".find(r => r.dataset.status === 'failed').innerText")
        assert "❌ failed" in failed and "ValueError" in failed and "<img src=x" in failed
        page.click("#jobs tbody tr[data-status=failed] .show-logs")
        logs = page.wait_for("document.querySelector('#logs-text').innerText.includes('<script>alert(2)</script>') "
                             "&& document.querySelector('#logs-text').innerText")
        assert "<img src=x" in logs
        assert page.evaluate("document.querySelectorAll('main img, main script, #logs *:not(h3):not(pre):not(button)')"
                             ".length") == 0

        assert page.evaluate("document.title") == title != "pwned"
        assert page.dialogs == [], page.dialogs
        assert page.exceptions == [], page.exceptions


def test_the_form_picks_a_resource_class(platform: Platform, tmp_path: Path) -> None:
    user, token = next(iter(platform.instance.tokens.items()))
    (tmp_path / "main.py").write_text(MLFLOW_MAIN.format(auroc=0.5, f1=0.5))
    (tmp_path / "config.yaml").write_text(GOOD_CONFIG)
    with browser_page() as page:
        page.goto(web_url(platform))
        offered = page.evaluate("[...document.querySelectorAll('#resource_class option')].map(o => o.value)")
        assert offered == ["small", "medium", "large"]
        assert page.evaluate("document.querySelector('#resource_class').value") == "medium"  # the default
        fill_form(page, token, [tmp_path / "main.py", tmp_path / "config.yaml"], folder="sized")
        page.evaluate("document.querySelector('#resource_class').value = 'large'")
        page.click("#submit")
        page.wait_for("document.querySelector('#result.ok') && document.querySelector('#result').innerText")
        assert page.dialogs == [] and page.exceptions == []
    jobs = [job for job in platform.api("GET", "/jobs", user).json() if job["submission"] == "sized"]
    assert [job["resource_class"] for job in jobs] == ["large"]
