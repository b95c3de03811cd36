"""deploy/captioner-policy.json gives a captioner one bundle: read it, write only its deliver/.

moto does not enforce IAM policies on S3, so the policy is evaluated here
as IAM evaluates an allow-only policy (`*` and `?` in resources, `${$}`
for a literal `$`, StringLike conditions), against every path of the
bundle layout docs/bundle.md documents and a folder name the service
really makes; and moto's IAM, over HTTP, must accept the document.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from service.bundle.manifest import folder_name
from tests.support.paths import REPOSITORY

REPO = REPOSITORY
POLICY = REPO / "deploy" / "captioner-policy.json"
BUCKET, PREFIX = "captioning-bucket", "captioning/bundles"
ASSET = "0b7e9b3a-3f3c-4c3e-9a57-3a3f2d1c4b5e"
# A title with what IAM reads specially (${...}, *, ?) and brackets.
FOLDER = folder_name("Ep. 1: ${price} [draft] 50% *final*?", ASSET)


def filled(folder: str = FOLDER) -> dict[str, Any]:
    """The template filled in as deploy/README.md says (a `$` written `${$}`)."""
    text = POLICY.read_text()
    for placeholder, value in (("BUCKET", BUCKET), ("PREFIX", PREFIX), ("FOLDER", folder)):
        text = text.replace(placeholder, value.replace("$", "${$}"))
    return json.loads(text)


def _pattern(glob: str) -> re.Pattern[str]:
    """An IAM resource or StringLike pattern as a regex."""
    out, i = [], 0
    while i < len(glob):
        escaped = re.match(r"\$\{([$*?])\}", glob[i:])
        if escaped:
            out.append(re.escape(escaped.group(1)))
            i += len(escaped.group(0))
            continue
        assert not glob.startswith("${", i), f"an IAM variable in {glob!r}"
        out.append({"*": ".*", "?": "."}.get(glob[i], re.escape(glob[i])))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def allowed(policy: dict[str, Any], action: str, resource: str, **context: str) -> bool:
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        if action not in statement["Action"]:
            continue
        if not any(_pattern(r).fullmatch(resource) for r in statement["Resource"]):
            continue
        conditions = statement.get("Condition", {})
        assert set(conditions) <= {"StringLike"}, conditions
        if all(
            key in context and any(_pattern(p).fullmatch(context[key]) for p in patterns)
            for key, patterns in conditions.get("StringLike", {}).items()
        ):
            return True
    return False


def layout() -> list[str]:
    """The bundle's paths, from the Layout block of docs/bundle.md."""
    text = (REPO / "docs" / "bundle.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    paths, folder = [], ""
    for line in block.splitlines()[2:]:  # after the fence's newline and `<title> [<asset id>]/`
        name = line.split()[0]
        name = re.sub(r"<[^>]+>", "proxy.mp4", name.replace("<lang>", "en"))
        if line.startswith("    "):
            paths.append(folder + name)
        else:
            folder = name if name.endswith("/") else ""
            paths.append(name)
    assert {"project.json", "deliver/", "deliver/RECEIPT.json", "captions/en.vtt"} <= set(paths)
    return [p for p in paths if not p.endswith("/")]


def key(path: str, folder: str = FOLDER) -> str:
    return f"arn:aws:s3:::{BUCKET}/{PREFIX}/{folder}/{path}"


def test_the_captioner_reads_the_whole_bundle_and_writes_only_its_deliver_folder():
    policy = filled()
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetObject", "s3:PutObject"}  # no delete, no ACLs
    paths = [*layout(), "deliver/en.vtt", "deliver/fr.cc.srt"]
    for path in paths:
        assert allowed(policy, "s3:GetObject", key(path)), path
        may_write = allowed(policy, "s3:PutObject", key(path))
        assert may_write == path.startswith("deliver/"), path
    # A refresh's aside manifest is the service's: readable, never writable.
    assert not allowed(policy, "s3:PutObject", key(".project.json.previous"))


def test_nothing_outside_the_one_bundle():
    policy = filled()
    other = folder_name("Ep. 2", str(uuid.UUID(int=7)))
    longer = FOLDER + " copy"  # a name this folder's is a prefix of
    for outside in (
        key("deliver/en.vtt", other),
        key("project.json", longer),
        key("deliver/en.vtt", longer),
        f"arn:aws:s3:::{BUCKET}/{PREFIX}/.staging/{FOLDER}/project.json",
        f"arn:aws:s3:::{BUCKET}/{PREFIX}/{FOLDER}",
        f"arn:aws:s3:::other-bucket/{PREFIX}/{FOLDER}/deliver/en.vtt",
    ):
        for action in ("s3:GetObject", "s3:PutObject"):
            assert not allowed(policy, action, outside), (action, outside)
    bucket = f"arn:aws:s3:::{BUCKET}"
    for listed in (f"{PREFIX}/{FOLDER}/", f"{PREFIX}/{FOLDER}/deliver/"):
        assert allowed(policy, "s3:ListBucket", bucket, **{"s3:prefix": listed}), listed
    for refused in ("", f"{PREFIX}/", f"{PREFIX}/{other}/", f"{PREFIX}/{longer}/"):
        assert not allowed(policy, "s3:ListBucket", bucket, **{"s3:prefix": refused}), refused
    assert not allowed(policy, "s3:ListBucket", bucket)  # no prefix: the whole bucket


def test_an_unescaped_dollar_would_be_an_iam_variable():
    unescaped = json.loads(POLICY.read_text().replace("FOLDER", FOLDER))
    with pytest.raises(AssertionError, match="IAM variable"):
        allowed(unescaped, "s3:GetObject", key("project.json"))


def test_moto_s_iam_accepts_the_filled_policy(aws):
    import boto3
    from botocore.exceptions import ClientError

    iam = boto3.client("iam")
    name = f"bundle-{uuid.uuid4().hex[:8]}"
    made = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(filled()))
    assert made["Policy"]["PolicyName"] == name
    broken = filled()
    broken["Statement"][0]["Effect"] = "Permit"
    with pytest.raises(ClientError, match="MalformedPolicyDocument"):
        iam.create_policy(PolicyName=f"{name}-broken", PolicyDocument=json.dumps(broken))
