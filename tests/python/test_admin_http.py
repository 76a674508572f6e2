"""The admin port's changes cannot come from a web page: any page a browser shows can
POST to 127.0.0.1:9644, so `POST /cluster/rebalance-leaders` and `POST /cluster/move`
refuse a request carrying `Origin` (every browser POST does) with 403, and one not
declared `application/json` (what a form or a no-preflight fetch sends) with 415.
`strata cluster rebalance-leaders` still works; reads are unaffected."""

from __future__ import annotations

import http.client
import json
import subprocess


def _request(broker, method: str, path: str, body: bytes = b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", broker.admin_port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def test_changes_refuse_what_a_browser_sends(broker):
    json_type = {"Content-Type": "application/json"}
    cross_site = {**json_type, "Origin": "http://attacker.example"}
    status, text = _request(broker, "POST", "/cluster/rebalance-leaders", b"{}", cross_site)
    assert status == 403 and "web pages" in json.loads(text)["error"], (status, text)
    move = json.dumps({"topic": "t", "partition": 0, "to": [1]}).encode()
    status, _ = _request(broker, "POST", "/cluster/move", move, cross_site)
    assert status == 403
    for form in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data"):
        status, text = _request(broker, "POST", "/cluster/move", move, {"Content-Type": form})
        assert status == 415 and "application/json" in text, (form, status, text)
    status, _ = _request(broker, "POST", "/cluster/rebalance-leaders")
    assert status == 415, "no declared type"

    # What the CLI sends passes; reads need nothing.
    status, text = _request(broker, "POST", "/cluster/rebalance-leaders", b"{}", json_type)
    assert status == 200 and json.loads(text)["transfers"] == [], (status, text)
    r = subprocess.run([str(broker.bin), "cluster", "rebalance-leaders", "--admin", broker.admin_addr],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    status, _ = _request(broker, "GET", "/health", headers={"Origin": "http://attacker.example"})
    assert status == 200
