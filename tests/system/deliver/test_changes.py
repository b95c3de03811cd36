"""Where deliver/ changed, from S3 events through SQS in moto's server. The
rest: tests/unit/deliver/test_changes.py."""

from __future__ import annotations

import anyio
import boto3
import pytest

from service.deliver.changes import SqsEvents
from tests.support.s3_events import events_to_sqs

pytestmark = pytest.mark.anyio


async def test_sqs_events_name_the_folder_a_captioner_wrote_to(bucket):
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    queue_url = events_to_sqs(bucket, removed=True)
    s3.put_object(Bucket=bucket, Key="shared/B [2]/captions/en.vtt", Body=b"x")  # not deliver/
    s3.put_object(Bucket=bucket, Key="shared/A [1]/deliver/en.vtt", Body=b"x")
    events = SqsEvents(queue_url, "shared", wait_seconds=1)
    with anyio.fail_after(20):
        batches = events.batches()
        assert await anext(batches) == {"A [1]"}
        s3.delete_object(Bucket=bucket, Key="shared/A [1]/deliver/en.vtt")
        s3.put_object(Bucket=bucket, Key="shared/C [3]/deliver/fr.srt", Body=b"x")
        seen: set[str] = set()
        while seen != {"A [1]", "C [3]"}:
            seen |= await anext(batches)
        await batches.aclose()
    leftover = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)
    assert not leftover.get("Messages")  # every message handed on was deleted
