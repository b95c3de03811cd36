"""A bucket whose event notifications go to a new SQS queue (moto's server),
as DELIVER_EVENTS_QUEUE_URL expects them (docs: "How deliveries run")."""

from __future__ import annotations

import boto3


def events_to_sqs(bucket: str, *, removed: bool = False) -> str:
    """The URL of a new SQS queue that gets `bucket`'s object-created (and,
    with `removed`, object-removed) events."""
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"{bucket}-deliver")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    events = ["s3:ObjectCreated:*", *(["s3:ObjectRemoved:*"] if removed else [])]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn["Attributes"]["QueueArn"], "Events": events}]
        },
    )
    return queue_url
