"""``make run``'s program from scratch: embedded CouchDB, set-up, API and sentinel; Ctrl-C stops all."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from api.config import ROOT
from scripts.couchdb import free_port


def test_run_starts_everything_and_ctrl_c_stops_it(tmp_path):
    couch_port, api_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COUCH", "JAMII", "API_"))}
    env.update(JAMII_DATA_DIR=str(tmp_path), COUCH_PORT=str(couch_port), API_PORT=str(api_port))
    process = subprocess.Popen([sys.executable, "-m", "scripts.run"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            output.append(line)
            if "Ctrl-C stops everything" in line or process.poll() is not None:
                break
        text = "".join(output)
        assert "Jamii is running" in text, text
        saved = json.loads((tmp_path / "couchdb-admin.json").read_text())
        assert saved["password"] in text
        assert oct((tmp_path / "couchdb-admin.json").stat().st_mode & 0o777) == "0o600"
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitoring", timeout=2) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.2)
        assert body["couchdb"]["medic"]["doc_count"] >= 1
        request = urllib.request.Request(f"http://127.0.0.1:{api_port}/api/v1/settings", headers={
            "Authorization": "Basic " + __import__("base64").b64encode(
                f"{saved['name']}:{saved['password']}".encode()).decode()})
        with urllib.request.urlopen(request, timeout=5) as r:
            assert json.loads(r.read())["contact_types"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, rest
    assert "stopped" in rest
    # the embedded CouchDB is gone too
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{couch_port}/", timeout=1)
        raise AssertionError("the embedded CouchDB is still running")
    except OSError:
        pass
