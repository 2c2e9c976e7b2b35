"""The reverse proxy example (deploy/nginx/leadersboard.conf) works as shipped: a real nginx with it, in
front of a real `leadersboard serve`, with a self-signed certificate made here; only the ports, the
upstreams' ports and the certificate's paths are changed. git pushes and reads over TLS through it,
and the API, the web form and the MLflow gateway answer under their names."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from leadersboard.local.ports import listening

from support.git import GitClient
from support.instances import GOOD_CONFIG, GOOD_MAIN
from support.ports import fresh_port
from support.servers import Server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "nginx" / "leadersboard.conf"
API, FORM, MLFLOW = "lb.example.org", "form.lb.example.org", "mlflow.lb.example.org"
START_SECONDS = 30

MAIN_CONFIG = """\
daemon off;
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/leadersboard.conf;
}}
"""


@dataclass
class Proxy:
    https_port: int
    http_port: int
    certificate: Path

    def get(self, host: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        """GET https://HOST:PORT/PATH, connecting to 127.0.0.1 but checking the certificate for HOST."""
        context = ssl.create_default_context(cafile=str(self.certificate))
        raw = socket.create_connection(("127.0.0.1", self.https_port), timeout=30)
        connection = http.client.HTTPSConnection(host, self.https_port, context=context, timeout=30)
        connection.sock = context.wrap_socket(raw, server_hostname=host)
        try:
            connection.request("GET", path, headers=headers or {})
            answer = connection.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read().decode(errors="replace")
        finally:
            connection.close()


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={API}",
                    "-addext", f"subjectAltName=DNS:{API},DNS:{FORM},DNS:{MLFLOW}",
                    "-keyout", str(key), "-out", str(cert)], capture_output=True, check=True, timeout=60)
    return cert, key


def _site_config(server: Server, https_port: int, http_port: int, cert: Path, key: Path) -> str:
    """The example with this test's ports and certificate: nothing else changes."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = re.sub(r"^\s*listen \[::\]:.*\n", "", text, flags=re.M)  # the test binds 127.0.0.1 only
    text = text.replace("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    text = text.replace("return 301 https://$host$request_uri", f"return 301 https://$host:{https_port}$request_uri")
    for public, local in ((8010, server.port), (8501, server.web_port), (5010, server.mlflow_port)):
        text = text.replace(f"server 127.0.0.1:{public};", f"server 127.0.0.1:{local};")
    text = text.replace(f"/etc/letsencrypt/live/{API}/fullchain.pem", str(cert))
    text = text.replace(f"/etc/letsencrypt/live/{API}/privkey.pem", str(key))
    assert "/etc/letsencrypt" not in text and ":8010;" not in text, "the example's layout changed: update this test"
    return text


@pytest.fixture
def proxy(server: Server, tmp_path: Path) -> Iterator[Proxy]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "nginx is missing: apt-get install nginx (scripts/install.sh --test does)"
    folder = tmp_path / "nginx"
    folder.mkdir()
    cert, key = _certificate(folder)
    https_port, http_port = fresh_port(), fresh_port()
    (folder / "leadersboard.conf").write_text(_site_config(server, https_port, http_port, cert, key))
    main = folder / "nginx.conf"
    main.write_text(MAIN_CONFIG.format(tmp=folder))
    checked = subprocess.run([binary, "-t", "-p", str(folder), "-c", str(main)], capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([binary, "-p", str(folder), "-c", str(main)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not (listening("127.0.0.1", https_port) and listening("127.0.0.1", http_port)):
            assert process.poll() is None, (folder / "error.log").read_text(errors="replace")
            assert time.monotonic() < deadline, "nginx did not listen"
            time.sleep(0.1)
        yield Proxy(https_port, http_port, cert)
    finally:
        process.terminate()  # SIGTERM: nginx's fast shutdown
        process.wait(30)


def _git_over_tls(tmp_path: Path, proxy: Proxy, server: Server, user: str) -> GitClient:
    url = f"https://{user}:{server.instance.tokens[user]}@{API}:{proxy.https_port}/git/submissions.git"
    client = GitClient(tmp_path / f"work-{user}", url, user)
    # Trust the test's certificate, and reach the example's name on 127.0.0.1 (git ≥ 2.37).
    client.env.update(GIT_CONFIG_COUNT="2",
                      GIT_CONFIG_KEY_0="http.sslCAInfo", GIT_CONFIG_VALUE_0=str(proxy.certificate),
                      GIT_CONFIG_KEY_1="http.curloptResolve",
                      GIT_CONFIG_VALUE_1=f"{API}:{proxy.https_port}:127.0.0.1")
    return client.init()


def test_git_push_and_ls_remote_through_the_tls_proxy(proxy: Proxy, server: Server, tmp_path: Path) -> None:
    git = _git_over_tls(tmp_path, proxy, server, "alice")
    git.commit("first", {"main.py": GOOD_MAIN, "config.yaml": GOOD_CONFIG}, "padim")
    code, out = git.push("HEAD:users/alice")
    assert code == 0, out
    assert "padim: job " in out, out  # the platform's own answer came back through the proxy
    code, refs = git.git("ls-remote", "origin")
    assert code == 0, refs
    assert f"{git.head()}\trefs/heads/users/alice" in refs


def test_api_form_and_mlflow_gateway_answer_under_their_names(proxy: Proxy, server: Server) -> None:
    status, _, body = proxy.get(API, "/healthz")
    assert status == 200 and json.loads(body)["redis"], body
    status, _, body = proxy.get(API, "/jobs", {"Authorization": f"Bearer {server.instance.tokens['alice']}"})
    assert status == 200 and json.loads(body) is not None, body
    status, _, body = proxy.get(FORM, "/")
    assert status == 200 and "<form" in body, body[:500]
    status, headers, _ = proxy.get(MLFLOW, "/api/2.0/mlflow/experiments/search")
    assert status == 401 and headers["www-authenticate"].startswith("Basic "), headers
    # Plain HTTP only redirects, to the same name and path over TLS.
    connection = http.client.HTTPConnection("127.0.0.1", proxy.http_port, timeout=30)
    try:
        connection.request("GET", "/jobs?x=1", headers={"Host": API})
        answer = connection.getresponse()
        assert answer.status == 301
        assert answer.getheader("Location") == f"https://{API}:{proxy.https_port}/jobs?x=1"
    finally:
        connection.close()


def test_the_example_keeps_what_git_and_live_logs_need() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for directive in ("proxy_request_buffering off;", "proxy_buffering off;", "client_max_body_size",
                      "X-Forwarded-Proto", "ssl_protocols TLSv1.2 TLSv1.3;"):
        assert directive in text, directive
