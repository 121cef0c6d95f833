"""SNS subscription confirmations, verified by the web process before they were stored."""

from __future__ import annotations

import logging

from handlers.base import Context, Outcome
from handlers.events import SubscriptionMessage

log = logging.getLogger(__name__)


def confirm_subscription(event: SubscriptionMessage, context: Context) -> Outcome:
    """Confirm the subscription by visiting its SubscribeURL, unless confirmation is switched off."""
    envelope = event.envelope
    if not context.settings.sns_confirm_subscriptions:
        log.warning("sns.confirmation_skipped topic=%s url=%s", envelope.TopicArn, envelope.SubscribeURL)
        return Outcome.IGNORED
    if context.confirm_subscription is None:
        raise RuntimeError("no confirm_subscription service in the handlers' context")
    context.confirm_subscription(envelope.model_dump())
    log.info("sns.subscription_confirmed topic=%s", envelope.TopicArn)
    return Outcome.APPLIED
