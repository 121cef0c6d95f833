"""SNS subscription confirmations, verified by the web process before they were stored."""

from __future__ import annotations

import logging

from handlers.base import Context, Outcome
from ingest import auth
from ingest.events import SubscriptionMessage

log = logging.getLogger(__name__)


def confirm_subscription(event: SubscriptionMessage, context: Context) -> Outcome:
    """Confirm the subscription by visiting its SubscribeURL, unless confirmation is switched off."""
    envelope = event.envelope
    if not context.settings.sns_confirm_subscriptions:
        log.warning("sns.confirmation_skipped topic=%s url=%s", envelope.TopicArn, envelope.SubscribeURL)
        return Outcome.IGNORED
    auth.confirm_subscription(envelope.model_dump(), http_get=context.http_get)
    log.info("sns.subscription_confirmed topic=%s", envelope.TopicArn)
    return Outcome.APPLIED
