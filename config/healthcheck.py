"""Container health probe: GET /healthz on the local gunicorn; exit 0 only on HTTP 200.

Stdlib only and no Django import, so the probe is cheap. The Host header is the first entry of
ALLOWED_HOSTS (a leading-dot wildcard loses its dot; "*" becomes localhost), so the probe is
accepted whatever host names the deployment allows. /healthz is exempt from the HTTPS redirect
(SECURE_REDIRECT_EXEMPT in config.settings.production), so plain http on loopback works.
"""

from __future__ import annotations

import http.client
import os
import sys


def probe_host(allowed_hosts: str) -> str:
    first = next((h.strip() for h in allowed_hosts.split(",") if h.strip()), "localhost")
    if first == "*":
        return "localhost"
    return first.lstrip(".") or "localhost"


def main() -> int:
    port = int(os.environ.get("HEALTHCHECK_PORT", "8000"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=4)
    try:
        connection.request("GET", "/healthz", headers={"Host": probe_host(os.environ.get("ALLOWED_HOSTS", ""))})
        response = connection.getresponse()
        body = response.read(2000).decode("utf-8", "replace")
    except OSError as exc:
        print(f"healthz unreachable: {exc}")
        return 1
    print(f"healthz {response.status}: {body}")
    return 0 if response.status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
