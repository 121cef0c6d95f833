"""Sign SNS messages the way AWS does, with a throwaway key and a self-signed certificate."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import uuid
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"

# The single list AWS's PHP and Ruby validators use, skipping absent keys. It is deliberately not
# ingest.auth's per-type lists, so the tests check one formulation against the other.
SIGNED_KEYS = ("Message", "MessageId", "Subject", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
HASHES: dict[str, hashes.HashAlgorithm] = {"1": hashes.SHA1(), "2": hashes.SHA256()}


@functools.cache
def _key_and_pem() -> tuple[rsa.RSAPrivateKey, bytes]:
    """Generate the RSA key and its self-signed certificate once per test process."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


def _timestamp() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SnsSigner:
    """Build SNS envelopes signed as AWS signs them; hand fetch_pem to the verifier."""

    def __init__(self, cert_url: str = CERT_URL) -> None:
        self.cert_url = cert_url
        self._key, self.pem = _key_and_pem()
        self._host = urlsplit(cert_url).netloc

    def fetch_pem(self, url: str) -> bytes:
        """Return the certificate at cert_url; fail like the network for any other URL."""
        if url != self.cert_url:
            raise ConnectionError(f"no certificate at {url}")
        return self.pem

    def sign(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        """Return a copy of message with SignatureVersion, Signature and SigningCertURL filled in."""
        string_to_sign = "".join(f"{key}\n{message[key]}\n" for key in SIGNED_KEYS if key in message)
        signature = self._key.sign(string_to_sign.encode(), padding.PKCS1v15(), HASHES[version])
        return {
            **message,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": self.cert_url,
        }

    def notification(
        self,
        message: str,
        topic_arn: str,
        message_id: str | None = None,
        subject: str | None = None,
        version: str = "2",
        timestamp: str | None = None,
    ) -> dict[str, Any]:
        """Return a signed Notification envelope."""
        envelope = {
            "Type": "Notification",
            "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": message,
            "Timestamp": timestamp or _timestamp(),
            "UnsubscribeURL": (
                f"https://{self._host}/?Action=Unsubscribe&SubscriptionArn={topic_arn}:{uuid.uuid4()}"
            ),
        }
        if subject is not None:
            envelope["Subject"] = subject
        return self.sign(envelope, version)

    def subscription_confirmation(
        self, topic_arn: str, subscribe_url: str | None = None, version: str = "2"
    ) -> dict[str, Any]:
        """Return a signed SubscriptionConfirmation envelope."""
        message = (
            f"You have chosen to subscribe to the topic {topic_arn}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message."
        )
        return self._confirmation("SubscriptionConfirmation", topic_arn, message, subscribe_url, version)

    def unsubscribe_confirmation(self, topic_arn: str, version: str = "2") -> dict[str, Any]:
        """Return a signed UnsubscribeConfirmation envelope."""
        message = (
            f"You have chosen to deactivate subscription {topic_arn}:{uuid.uuid4()}.\n"
            "To cancel this operation and restore the subscription, visit the SubscribeURL included in this message."
        )
        return self._confirmation("UnsubscribeConfirmation", topic_arn, message, None, version)

    def _confirmation(
        self, kind: str, topic_arn: str, message: str, subscribe_url: str | None, version: str
    ) -> dict[str, Any]:
        token = uuid.uuid4().hex * 4
        envelope = {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": topic_arn,
            "Message": message,
            "SubscribeURL": subscribe_url
            or f"https://{self._host}/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}",
            "Timestamp": _timestamp(),
        }
        return self.sign(envelope, version)
