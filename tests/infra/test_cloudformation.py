"""The crash-report CloudFormation template: cfn-lint clean, and wired the way the service expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "crash-reports.yaml"

# SNS's hard limits for an HTTP/S delivery policy.
SNS_MAX_RETRIES = 100
SNS_MAX_TOTAL_RETRY_SECONDS = 3600


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """Decode the template with cfn-lint's loader, which understands !Ref, !Sub and !GetAtt."""
    decoded, errors = decode(str(TEMPLATE))
    assert not errors, errors
    assert decoded is not None
    return decoded


def _resource(template: dict[str, Any], name: str, kind: str) -> dict[str, Any]:
    resource = template["Resources"][name]
    assert resource["Type"] == kind
    return resource


def _properties(template: dict[str, Any], name: str, kind: str) -> dict[str, Any]:
    properties: dict[str, Any] = _resource(template, name, kind)["Properties"]
    return properties


def _depends_on(resource: dict[str, Any]) -> list[str]:
    depends_on = resource.get("DependsOn", [])
    return [depends_on] if isinstance(depends_on, str) else list(depends_on)


def test_template_has_no_cfn_lint_errors_or_warnings() -> None:
    matches = lint_file(TEMPLATE, config=ManualArgs())
    assert [str(match) for match in matches] == []


def test_cfn_lint_reports_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("HttpMethod: POST", "HttpMethod: FETCH"))
    assert lint_file(broken, config=ManualArgs())


def test_subscription_posts_to_the_s3_webhook_over_https(template: dict[str, Any]) -> None:
    subscription = _properties(template, "CrashReportSubscription", "AWS::SNS::Subscription")
    assert subscription["Protocol"] == "https"
    assert subscription["Endpoint"] == {"Fn::Sub": "${ServiceUrl}/webhooks/s3"}
    assert subscription["TopicArn"] == {"Ref": "CrashReportTopic"}


def test_raw_message_delivery_is_off_so_messages_stay_signed(template: dict[str, Any]) -> None:
    subscription = _properties(template, "CrashReportSubscription", "AWS::SNS::Subscription")
    assert str(subscription.get("RawMessageDelivery", False)).lower() == "false"


def test_delivery_policy_stays_within_the_sns_retry_limits(template: dict[str, Any]) -> None:
    subscription = _properties(template, "CrashReportSubscription", "AWS::SNS::Subscription")
    policy = subscription["DeliveryPolicy"]["healthyRetryPolicy"]
    min_delay, max_delay = policy["minDelayTarget"], policy["maxDelayTarget"]
    no_delay = policy.get("numNoDelayRetries", 0)
    at_min_delay = policy.get("numMinDelayRetries", 0)
    at_max_delay = policy.get("numMaxDelayRetries", 0)
    backoff = policy["numRetries"] - no_delay - at_min_delay - at_max_delay

    assert policy["numRetries"] <= SNS_MAX_RETRIES
    assert 1 <= min_delay <= max_delay
    assert backoff >= 0
    # Worst case: every backoff retry waits the maximum delay.
    worst_case_seconds = at_min_delay * min_delay + (backoff + at_max_delay) * max_delay
    assert worst_case_seconds <= SNS_MAX_TOTAL_RETRY_SECONDS


def test_undeliverable_notifications_go_to_the_dead_letter_queue(template: dict[str, Any]) -> None:
    subscription = _properties(template, "CrashReportSubscription", "AWS::SNS::Subscription")
    assert subscription["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    }

    queue_policy = _properties(template, "DeadLetterQueuePolicy", "AWS::SQS::QueuePolicy")
    assert queue_policy["Queues"] == [{"Ref": "DeadLetterQueue"}]
    from_topic = queue_policy["PolicyDocument"]["Statement"][0]
    assert from_topic["Principal"] == {"Service": "sns.amazonaws.com"}
    assert from_topic["Action"] == "sqs:SendMessage"
    assert from_topic["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "CrashReportTopic"}}}


def test_topic_policy_lets_only_the_crash_report_bucket_publish(template: dict[str, Any]) -> None:
    topic_policy = _properties(template, "CrashReportTopicPolicy", "AWS::SNS::TopicPolicy")
    assert topic_policy["Topics"] == [{"Ref": "CrashReportTopic"}]
    [statement] = topic_policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${CrashReportBucketName}"}},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }


def test_bucket_notifies_the_topic_after_its_policy_exists(template: dict[str, Any]) -> None:
    bucket = _resource(template, "CrashReportBucket", "AWS::S3::Bucket")
    assert "CrashReportTopicPolicy" in _depends_on(bucket)
    [notification] = bucket["Properties"]["NotificationConfiguration"]["TopicConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Topic"] == {"Ref": "CrashReportTopic"}
    assert notification["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": {"Ref": "CrashReportPrefix"}}
    ]


def test_eventbridge_path_authenticates_retries_for_a_day_then_dead_letters(template: dict[str, Any]) -> None:
    assert template["Parameters"]["EnableEventBridge"]["Default"] == "false"
    assert template["Parameters"]["S3WebhookToken"]["NoEcho"] is True

    connection = _properties(template, "ServiceConnection", "AWS::Events::Connection")
    assert connection["AuthorizationType"] == "API_KEY"
    assert connection["AuthParameters"]["ApiKeyAuthParameters"] == {
        "ApiKeyName": "Authorization",
        "ApiKeyValue": {"Fn::Sub": "Bearer ${S3WebhookToken}"},
    }
    destination = _properties(template, "ServiceApiDestination", "AWS::Events::ApiDestination")
    assert destination["InvocationEndpoint"] == {"Fn::Sub": "${ServiceUrl}/webhooks/s3"}
    assert destination["HttpMethod"] == "POST"

    rule = _properties(template, "CrashReportRule", "AWS::Events::Rule")
    assert rule["EventPattern"]["source"] == ["aws.s3"]
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ServiceApiDestination", "Arn"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}


def test_outputs_name_what_the_service_is_configured_with(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["TopicArn"]["Value"] == {"Ref": "CrashReportTopic"}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "DeadLetterQueue"}
    assert outputs["BucketName"]["Value"] == {"Ref": "CrashReportBucketName"}
