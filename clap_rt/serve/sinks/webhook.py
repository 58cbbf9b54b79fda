"""Webhooks: each event record is POSTed as JSON to a URL.

Authentication: `Authorization: Bearer <token>`, or an HMAC-SHA256 of the exact body bytes
in `X-Clap-Rt-Signature: sha256=<hex>` (the receiver recomputes it with the shared secret;
the record's `id` lets it drop a replay). Every request carries `X-Clap-Rt-Event-Id`.

Outcomes: 2xx delivered. No answer, 401 / 403 (credentials to fix), 408, 429 and 5xx: the
receiver is down, the record waits in the outbox and is retried with backoff. Any other
status (400, 404, 422, a redirect...) is about the record or the URL: it is tried
`max_attempts` times in all, then dropped and counted. Proxies from the environment are not
used, so an event and its token go only to the configured host.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request

from ... import __version__
from . import Sink, SinkDown, SinkRejected

RETRY_STATUSES = frozenset({401, 403, 408, 429})      # and every 5xx


def signature(secret: bytes, body: bytes) -> str:
    """The signature header's value for `body`: "sha256=" + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None          # a redirect surfaces as its HTTPError: the URL needs fixing


class WebhookSink(Sink):
    def __init__(self, name: str, url: str, token=None, hmac_secret=None, timeout: float = 5.0,
                 max_attempts: int = 3, signature_header: str = "X-Clap-Rt-Signature"):
        self.name, self.url, self.timeout, self.max_attempts = name, url, timeout, max_attempts
        self.token, self.secret, self.signature_header = token, hmac_secret, signature_header
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
        self._attempts: tuple = (None, 0)          # (record id, refused attempts so far)

    def request(self, record: dict) -> urllib.request.Request:
        body = json.dumps(record, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"clap-rt/{__version__}",
                   "X-Clap-Rt-Event-Id": str(record["id"])}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.value}"
        if self.secret is not None:
            headers[self.signature_header] = signature(self.secret.value.encode(), body)
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def send(self, record: dict) -> None:
        try:
            with self._opener.open(self.request(record), timeout=self.timeout) as r:
                r.read()
            return
        except urllib.error.HTTPError as e:
            status = e.code
            e.close()
        except (urllib.error.URLError, OSError) as e:   # refused, reset, timed out, DNS
            raise SinkDown(f"POST {self.url}: {getattr(e, 'reason', e)}")
        if status in RETRY_STATUSES or status >= 500:
            raise SinkDown(f"POST {self.url}: HTTP {status}")
        rid, n = self._attempts
        n = n + 1 if rid == record["id"] else 1
        self._attempts = (record["id"], n)
        if n >= self.max_attempts:
            raise SinkRejected(f"HTTP {status} after {n} attempts")
        raise SinkDown(f"POST {self.url}: HTTP {status} (attempt {n} of {self.max_attempts})")
