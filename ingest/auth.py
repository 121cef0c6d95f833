"""Authenticate every webhook source on the raw request, before any body parsing."""

from __future__ import annotations

import base64
import functools
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# The host pattern of AWS's own PHP, Ruby and JS validators; a bare amazonaws.com match would
# also accept S3 buckets, which anyone can fill with a certificate.
SNS_CERT_HOST = re.compile(r"^sns\.[a-zA-Z0-9-]{3,}\.amazonaws\.com(\.cn)?$")

# One signature of a webhook-signature header: space-separated as the spec writes them, or
# comma-joined, as servers join the values of a header sent twice ("v1,abc=,v1,def=").
# Base64 holds neither a space nor a comma, so each signature ends at one.
_V1_SIGNATURE = re.compile(r"(?:^|[ ,])v1,([A-Za-z0-9+/]+={0,2})(?=$|[ ,])")

# Whole Unix seconds as senders write them; the bound keeps int() far from its digit limit.
_UNIX_SECONDS = re.compile(r"[0-9]{1,15}")

_SNS_CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_SNS_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _SNS_CONFIRMATION_FIELDS,
    "UnsubscribeConfirmation": _SNS_CONFIRMATION_FIELDS,
}
_SNS_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class AuthError(Exception):
    """401: missing or bad credentials/signature, or a timestamp outside tolerance."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TopicNotAllowed(Exception):
    """403: an authentic SNS message from a topic outside the allow-list."""

    def __init__(self, topic_arn: str) -> None:
        super().__init__(f"SNS topic {topic_arn} is not allowed")
        self.topic_arn = topic_arn


class ConfirmationFailed(Exception):
    """The GET of an SNS SubscribeURL failed or answered non-2xx."""


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    # Flask's headers ignore case on lookup but a plain dict does not, so normalise both.
    return {name.lower(): value for name, value in headers.items()}


@functools.cache
def _standard_webhooks_key(secret: str) -> bytes:
    # Decoded exactly as the standardwebhooks library does, so every sender using it derives the same key.
    try:
        key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    except ValueError:
        key = b""
    if not key:
        raise AuthError("not_configured", "The pipeline webhook secret is not whsec_ followed by base64.")
    return key


def verify_pipeline(
    secret: str | None,
    body: bytes,
    headers: Mapping[str, str],
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> str:
    """Verify a Standard Webhooks signature on the raw body; return the webhook-id."""
    # standardwebhooks' Webhook.verify is not used: it decodes the body as UTF-8, has a fixed clock and
    # tolerance, and crashes on a malformed signature list. The HMAC itself is the spec's one line.
    if not secret:
        raise AuthError("not_configured", "Pipeline webhooks are not configured on this server.")
    key = _standard_webhooks_key(secret)
    lowered = _lower_keys(headers)
    msg_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not (msg_id and timestamp and signatures):
        raise AuthError(
            "missing_signature",
            "The webhook-id, webhook-timestamp and webhook-signature headers are required.",
        )
    if not _UNIX_SECONDS.fullmatch(timestamp):
        raise AuthError("bad_timestamp", "The webhook-timestamp header must be whole Unix seconds.")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_seconds:
        raise AuthError(
            "timestamp_out_of_tolerance",
            f"The webhook-timestamp is more than {tolerance_seconds} seconds away from the server clock.",
        )
    # UTF-8, as the standardwebhooks library signs it, whatever characters the id holds.
    digest = hmac.digest(key, f"{msg_id}.{timestamp}.".encode() + body, "sha256")
    expected = base64.b64encode(digest)
    # Several signatures are sent while a secret is rotated; any one that matches is enough.
    if not any(
        hmac.compare_digest(expected, candidate.encode()) for candidate in _V1_SIGNATURE.findall(signatures)
    ):
        raise AuthError("bad_signature", "No webhook-signature matches the request body.")
    return msg_id


def verify_bearer(expected: str | None, headers: Mapping[str, str]) -> None:
    """Check Authorization: Bearer <expected> in constant time."""
    if not expected:
        raise AuthError("not_configured", "Token authentication is not configured on this server.")
    scheme, _, token = _lower_keys(headers).get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("missing_token", "An Authorization: Bearer token is required.")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthError("bad_token", "The bearer token is not valid.")


def verify_wandb(token: str | None, secret: str | None, body: bytes, headers: Mapping[str, str]) -> None:
    """Check a W&B delivery's bearer token and X-Wandb-Signature, whichever are configured."""
    if not token and not secret:
        raise AuthError("not_configured", "W&B webhooks are not configured on this server.")
    if token:
        verify_bearer(token, headers)
    if secret:
        signature = _lower_keys(headers).get("x-wandb-signature", "").removeprefix("sha256=")
        if not signature:
            raise AuthError("missing_signature", "The X-Wandb-Signature header is required.")
        digest = hmac.digest(secret.encode(), body, "sha256")
        candidate = signature.encode()
        # W&B documents base64; third-party receivers disagree, so hex of the same digest passes too.
        # Both comparisons always run (| not `or`) to keep the time independent of the encoding.
        if not (
            hmac.compare_digest(candidate, base64.b64encode(digest))
            | hmac.compare_digest(candidate.lower(), digest.hex().encode())
        ):
            raise AuthError("bad_signature", "X-Wandb-Signature does not match the request body.")


def _is_sns_url(url: object) -> TypeGuard[str]:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    # netloc equal to the bare hostname rules out userinfo and ports; fullmatch ignores the `$`
    # quirk that would let a trailing newline through.
    return (
        parts.scheme == "https"
        and parts.hostname is not None
        and parts.netloc.lower() == parts.hostname
        and SNS_CERT_HOST.fullmatch(parts.hostname) is not None
    )


def check_certificate_url(url: str) -> None:
    """Refuse a SigningCertURL that is not an https .pem on an SNS host."""
    if not (_is_sns_url(url) and urlsplit(url).path.endswith(".pem")):
        raise AuthError("bad_certificate_url", "SigningCertURL is not an https .pem URL on an SNS host.")


def _sns_field(message: Mapping[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str):
        raise AuthError("malformed_message", f"The SNS message field {name} is missing or not a string.")
    return value


def _get_pem(url: str, timeout: float) -> bytes:
    # No redirects: the certificate must come from the host check_certificate_url approved.
    response = requests.get(url, timeout=timeout, allow_redirects=False)
    response.raise_for_status()
    return response.content


class SnsVerifier:
    """Verify SNS message signatures and topics, caching signing certificates per URL."""

    def __init__(
        self,
        allowed_topics: Iterable[str],
        fetch_pem: Callable[[str], bytes] | None = None,
        cache_size: int = 32,
        timeout: float = 5.0,
    ) -> None:
        self._allowed_topics = frozenset(allowed_topics)
        self._fetch_pem = fetch_pem or functools.partial(_get_pem, timeout=timeout)
        # Each SigningCertURL names one certificate, so caching by URL is safe; lru_cache does not
        # keep failures, so a fetch that failed is tried again on the next message.
        self._public_key = functools.lru_cache(maxsize=cache_size)(self._load_public_key)

    def _load_public_key(self, url: str) -> rsa.RSAPublicKey:
        try:
            public_key = x509.load_pem_x509_certificate(self._fetch_pem(url)).public_key()
        # requests' errors are OSErrors; a body that is no certificate is a ValueError.
        except (OSError, ValueError) as exc:
            raise AuthError(
                "certificate_unavailable", "The SNS signing certificate could not be fetched."
            ) from exc
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise AuthError(
                "certificate_unavailable", "The SNS signing certificate does not hold an RSA key."
            )
        return public_key

    def verify(self, message: Mapping[str, Any]) -> None:
        """Verify a parsed SNS message's signature, then its topic."""
        kind = _sns_field(message, "Type")
        if kind not in _SNS_SIGNED_FIELDS:
            raise AuthError("malformed_message", f"The SNS message Type {kind!r} is not known.")
        version = _sns_field(message, "SignatureVersion")
        if version not in _SNS_HASHES:
            raise AuthError(
                "unsupported_signature_version", f"SNS SignatureVersion {version!r} is not supported."
            )
        cert_url = _sns_field(message, "SigningCertURL")
        check_certificate_url(cert_url)
        try:
            signature = base64.b64decode(_sns_field(message, "Signature"), validate=True)
        except ValueError:
            raise AuthError("bad_signature", "The SNS Signature is not base64.") from None
        # Subject is signed only when it was published; null is treated as absent, as AWS's validators do.
        string_to_sign = "".join(
            f"{name}\n{_sns_field(message, name)}\n"
            for name in _SNS_SIGNED_FIELDS[kind]
            if name != "Subject" or message.get(name) is not None
        )
        try:
            self._public_key(cert_url).verify(
                signature, string_to_sign.encode(), padding.PKCS1v15(), _SNS_HASHES[version]()
            )
        except InvalidSignature:
            raise AuthError("bad_signature", "The SNS signature does not match the message.") from None
        # The topic is checked after the signature so that a 403 only ever answers a genuine AWS message
        # (SNS then stops retrying a misrouted topic), while a forgery always gets 401 and learns
        # nothing about the allow-list.
        topic_arn = message["TopicArn"]
        if topic_arn not in self._allowed_topics:
            raise TopicNotAllowed(topic_arn)


def confirm_subscription(
    message: Mapping[str, Any], http_get: Callable[[str], Any] | None = None, timeout: float = 10.0
) -> None:
    """GET the SubscribeURL of a verified SubscriptionConfirmation."""
    url = message.get("SubscribeURL")
    # The signature already covers SubscribeURL; checking the host as well means this server never
    # sends a GET anywhere but SNS, even if a caller forgets to verify first.
    if not _is_sns_url(url):
        raise AuthError("bad_subscribe_url", "SubscribeURL is not an https URL on an SNS host.")
    get = http_get or functools.partial(requests.get, timeout=timeout, allow_redirects=False)
    try:
        response = get(url)
    except OSError as exc:
        raise ConfirmationFailed(f"GET SubscribeURL failed: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise ConfirmationFailed(f"GET SubscribeURL answered HTTP {response.status_code}.")
