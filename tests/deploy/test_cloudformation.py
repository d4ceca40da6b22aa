"""Checks of deploy/cloudformation.yaml: cfn-lint clean, plus the properties the
deployment relies on (Graviton Spot, retry only Spot reclaims, private
encrypted versioned bucket, least-privilege IAM).

Every ``check_*`` function raises AssertionError on a violation. Each runs once
on the real template and once more on a deliberately broken copy
(``MUTATIONS``) to prove it can fail.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO / "deploy" / "cloudformation.yaml"

GRAVITON_FAMILIES = {"c7g", "m7g", "r7g"}
PSEUDO = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "cocktail-assets",
    "AWS::URLSuffix": "amazonaws.com",
}


# --------------------------------------------------------------------- helpers
def load_template() -> dict:
    template, matches = decode(str(TEMPLATE_PATH))
    assert not matches, [str(m) for m in matches]
    # Plain dict/list/str so that deepcopy and json work on it.
    return json.loads(json.dumps(template))


def cfn_lint_bin() -> str:
    candidate = Path(sys.executable).parent / "cfn-lint"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("cfn-lint")
    if not found:
        pytest.fail("cfn-lint not installed next to the interpreter nor on PATH")
    return found


def resources_of_type(t: dict, type_: str) -> dict[str, dict]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == type_}


def only(t: dict, type_: str) -> tuple[str, dict]:
    found = resources_of_type(t, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.items()))


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def resolve(t: dict, value: Any) -> Any:
    """Evaluate Ref/GetAtt/Sub with parameter defaults and fixed pseudo
    parameters, so that policy resources can be compared as strings.
    Unknown attributes become ``<Logical.Attr>`` markers. Fn::If takes its
    true branch (the one granting more, where a condition adds a permission);
    AWS::NoValue becomes None and is dropped from lists."""
    if isinstance(value, list):
        return [r for r in (resolve(t, v) for v in value) if r is not None]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::If"}:
        return resolve(t, value["Fn::If"][1])
    if value == {"Ref": "AWS::NoValue"}:
        return None
    if set(value) == {"Ref"}:
        return ref(t, value["Ref"])
    if set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        name, attr = target.split(".", 1) if isinstance(target, str) else target
        return get_att(t, name, attr)
    if set(value) == {"Fn::Sub"}:
        body = value["Fn::Sub"]
        variables: dict = {}
        if isinstance(body, list):
            body, variables = body

        def repl(m: re.Match) -> str:
            key = m.group(1)
            if key in variables:
                return str(resolve(t, variables[key]))
            if "." in key:
                return str(get_att(t, *key.split(".", 1)))
            return str(ref(t, key))

        return re.sub(r"\$\{([^}!]+)\}", repl, body)
    return {k: resolve(t, v) for k, v in value.items()}


def ref(t: dict, name: str) -> str:
    if name in PSEUDO:
        return PSEUDO[name]
    params = t.get("Parameters", {})
    if name in params:
        return str(params[name].get("Default") or f"<param:{name}>")
    res = t["Resources"][name]
    name_prop = {"AWS::S3::Bucket": "BucketName", "AWS::Logs::LogGroup": "LogGroupName"}.get(
        res["Type"]
    )
    if name_prop:
        return resolve(t, res["Properties"][name_prop])
    return f"<{name}>"


def get_att(t: dict, name: str, attr: str) -> str:
    res = t["Resources"][name]
    if res["Type"] == "AWS::S3::Bucket" and attr == "Arn":
        return f"arn:aws:s3:::{ref(t, name)}"
    return f"<{name}.{attr}>"


def statements(t: dict, logical_id: str) -> list[dict]:
    """All policy statements of a role (inline policies) or managed policy."""
    props = t["Resources"][logical_id]["Properties"]
    docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
    if "PolicyDocument" in props:
        docs.append(props["PolicyDocument"])
    return resolve(t, [s for d in docs for s in as_list(d["Statement"])])


def all_policy_statements(t: dict) -> list[tuple[str, dict]]:
    out = []
    for name, res in t["Resources"].items():
        if res["Type"] in ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            out += [(name, s) for s in statements(t, name)]
    return out


def job_role_id(t: dict) -> str:
    _, jd = only(t, "AWS::Batch::JobDefinition")
    role = jd["Properties"]["ContainerProperties"]["JobRoleArn"]
    assert role.get("Fn::GetAtt") in (["BatchJobRole", "Arn"], "BatchJobRole.Arn"), role
    return "BatchJobRole"


def bucket_arn(t: dict) -> str:
    name, _ = only(t, "AWS::S3::Bucket")
    return get_att(t, name, "Arn")


def allowed_key_prefixes(t: dict) -> list[str]:
    """Key prefixes the job and the host may touch: <analytics>/ and <staging>/."""
    analytics = t["Parameters"]["AnalyticsPrefix"]["Default"]
    staging = t["Parameters"]["StagingPrefix"]["Default"]
    assert analytics == "analytics" and staging == "dagster-steps", (analytics, staging)
    return [f"{analytics}/", f"{staging}/"]


def batch_decision(rules: list[dict], status_reason: str, reason: str, exit_code: str) -> str:
    """First matching EvaluateOnExit rule wins; Batch retries when none match."""
    for rule in rules:
        conds = [
            (rule.get("OnStatusReason"), status_reason),
            (rule.get("OnReason"), reason),
            (rule.get("OnExitCode"), exit_code),
        ]
        given = [(p, v) for p, v in conds if p is not None]
        assert given, f"rule without a condition: {rule}"
        if all(fnmatch.fnmatchcase(v, p) for p, v in given):
            return rule["Action"].upper()
    return "RETRY (no rule matched)"


# ---------------------------------------------------------------------- checks
def check_spot_graviton(t: dict) -> None:
    _, ce = only(t, "AWS::Batch::ComputeEnvironment")
    props = ce["Properties"]
    assert props["Type"] == "MANAGED"
    cr = props["ComputeResources"]
    assert cr["Type"] == "SPOT", cr["Type"]
    assert cr["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED", cr["AllocationStrategy"]
    types = cr["InstanceTypes"]
    assert types, "no instance types"
    families = {it.split(".")[0] for it in types}
    assert families <= GRAVITON_FAMILIES, f"non-Graviton families: {families - GRAVITON_FAMILIES}"
    assert int(cr["MinvCpus"]) == 0, cr["MinvCpus"]
    assert cr["MaxvCpus"] == {"Ref": "MaxvCpus"}, "MaxvCpus must be the parameter"
    assert cr["Subnets"] == {"Ref": "SubnetIds"}
    assert cr["SecurityGroupIds"] == {"Ref": "SecurityGroupIds"}
    assert t["Parameters"]["SubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    assert "InstanceRole" in cr


def check_queue(t: dict) -> None:
    _, q = only(t, "AWS::Batch::JobQueue")
    ce_name, _ = only(t, "AWS::Batch::ComputeEnvironment")
    order = q["Properties"]["ComputeEnvironmentOrder"]
    assert [o["ComputeEnvironment"] for o in order] == [{"Ref": ce_name}], order


def check_job_definition(t: dict) -> None:
    _, jd = only(t, "AWS::Batch::JobDefinition")
    p = jd["Properties"]
    assert p["Type"] == "container"
    assert p["PlatformCapabilities"] == ["EC2"]
    assert p.get("Timeout", {}).get("AttemptDurationSeconds") == 3600, p.get("Timeout")
    c = p["ContainerProperties"]
    reqs = {r["Type"]: r["Value"] for r in c["ResourceRequirements"]}
    assert reqs == {"VCPU": {"Ref": "JobVcpus"}, "MEMORY": {"Ref": "JobMemoryMiB"}}, reqs
    image = resolve(t, c["Image"])
    assert image.endswith(":<param:ImageTag>") and "<ImageRepository.RepositoryUri>" in image, image
    log = c["LogConfiguration"]
    assert log["LogDriver"] == "awslogs"
    assert log["Options"]["awslogs-group"] == {"Ref": "JobLogGroup"}
    assert "ExecutionRoleArn" in c and "JobRoleArn" in c
    # Nothing secret-looking baked into the definition or its command line.
    for env in c.get("Environment", []):
        assert not re.search(r"SECRET|PASSWORD|TOKEN|KEY|DATABASE_URL", env["Name"]), env
    assert not any(re.search(r"(?i)password|secret|token", str(a)) for a in c.get("Command", []))
    # DATABASE_URL only ever as an ECS secret taken from the optional parameter.
    secrets = resolve(t, c.get("Secrets", []))
    assert secrets in (
        [],
        [{"Name": "DATABASE_URL", "ValueFrom": "<param:DatabaseUrlSecretArn>"}],
    ), secrets
    assert c.get("Secrets") in (
        None,
        {
            "Fn::If": [
                "HasDatabaseSecret",
                [{"Name": "DATABASE_URL", "ValueFrom": {"Ref": "DatabaseUrlSecretArn"}}],
                {"Ref": "AWS::NoValue"},
            ]
        },
    ), "the secret must be conditional on the parameter being set"


def check_execution_role(t: dict) -> None:
    _, jd = only(t, "AWS::Batch::JobDefinition")
    role = jd["Properties"]["ContainerProperties"]["ExecutionRoleArn"]
    assert role == {"Fn::GetAtt": ["BatchExecutionRole", "Arn"]}, role
    granted: dict[str, set[str]] = {}
    for s in statements(t, "BatchExecutionRole"):
        assert s["Effect"] == "Allow"
        for a in as_list(s["Action"]):
            granted.setdefault(a, set()).update(as_list(s["Resource"]))
    log_group = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/batch/cocktail-assets:*"
    assert granted == {
        "ecr:GetAuthorizationToken": {"*"},
        "ecr:BatchCheckLayerAvailability": {"<ImageRepository.Arn>"},
        "ecr:BatchGetImage": {"<ImageRepository.Arn>"},
        "ecr:GetDownloadUrlForLayer": {"<ImageRepository.Arn>"},
        "logs:CreateLogStream": {log_group},
        "logs:PutLogEvents": {log_group},
        "secretsmanager:GetSecretValue": {"<param:DatabaseUrlSecretArn>"},
    }, granted


def check_retry_strategy(t: dict) -> None:
    _, jd = only(t, "AWS::Batch::JobDefinition")
    rs = jd["Properties"]["RetryStrategy"]
    assert rs["Attempts"] == {"Ref": "JobAttempts"}
    assert t["Parameters"]["JobAttempts"]["Default"] == 3
    rules = rs["EvaluateOnExit"]
    spot = batch_decision(rules, "Host EC2 (instance i-0abc) terminated.", "", "")
    assert spot == "RETRY", f"Spot reclaim -> {spot}"
    for status, reason, code in [
        ("Essential container in task exited", "", "1"),
        ("Job attempt duration exceeded timeout", "", ""),
        (
            "Essential container in task exited",
            "OutOfMemoryError: Container killed due to memory usage",
            "137",
        ),
    ]:
        got = batch_decision(rules, status, reason, code)
        assert got == "EXIT", f"{status!r}/{reason!r}/{code!r} -> {got}"


def check_bucket(t: dict) -> None:
    name, b = only(t, "AWS::S3::Bucket")
    p = b["Properties"]
    pab = p["PublicAccessBlockConfiguration"]
    for key in (
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ):
        assert pab.get(key) is True, f"{key} = {pab.get(key)}"
    assert [r["ObjectOwnership"] for r in p["OwnershipControls"]["Rules"]] == [
        "BucketOwnerEnforced"
    ]
    sse = p.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    algos = {r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in sse}
    assert algos and algos <= {"AES256", "aws:kms", "aws:kms:dsse"}, algos
    assert p["VersioningConfiguration"]["Status"] == "Enabled"
    rules = [r for r in p["LifecycleConfiguration"]["Rules"] if r["Status"] == "Enabled"]
    assert any("NoncurrentDays" in r.get("NoncurrentVersionExpiration", {}) for r in rules), (
        "no noncurrent expiry"
    )
    # The rule's prefix is where the store writes the daily artifacts, and only those.
    from cocktail_assets.activity.assets import SUMMARY_ARTIFACT, artifact_name
    from cocktail_assets.resources.store import AnalyticsStore

    store = AnalyticsStore(prefix=t["Parameters"]["AnalyticsPrefix"]["Default"])
    daily_key = store.key(artifact_name("2026-01-31"))
    activity = [r for r in rules if r.get("Prefix") and daily_key.startswith(
        resolve(t, r["Prefix"]))]
    assert activity and activity[0]["ExpirationInDays"] == {"Ref": "ActivityRetentionDays"}, (
        "no activity expiry"
    )
    assert resolve(t, activity[0]["Prefix"]).endswith("/activity/"), "expiry wider than activity"
    assert not store.key(f"{SUMMARY_ARTIFACT}.json").startswith(resolve(t, activity[0]["Prefix"]))
    assert t["Parameters"]["ActivityRetentionDays"]["Default"] == 455
    # Bucket policy denies any request without TLS.
    _, pol = only(t, "AWS::S3::BucketPolicy")
    assert pol["Properties"]["Bucket"] == {"Ref": name}
    stmts = [resolve(t, s) for s in as_list(pol["Properties"]["PolicyDocument"]["Statement"])]
    arn = bucket_arn(t)
    assert any(
        s["Effect"] == "Deny"
        and s.get("Principal") in ("*", {"AWS": "*"})
        and "s3:*" in as_list(s["Action"])
        and {arn, f"{arn}/*"} <= set(as_list(s["Resource"]))
        and str(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower()
        == "false"
        for s in stmts
    ), "no Deny of non-TLS access"


EVENTS_PATTERN = "/*/attempt-*"  # the one inner wildcard: the worker's own attempt folders


def check_s3_scoped(t: dict, logical_id: str) -> None:
    """S3 object actions only on the two prefixes, ListBucket only on the
    bucket with a prefix condition, never a "*" resource, nothing deletes."""
    keys = allowed_key_prefixes(t)
    arn = bucket_arn(t)
    prefixes = [f"{arn}/{k}" for k in keys]
    s3_stmts = [
        s
        for s in statements(t, logical_id)
        if s["Effect"] == "Allow"
        and any(a == "*" or a.startswith("s3:") for a in as_list(s["Action"]))
    ]
    assert s3_stmts, f"{logical_id} has no S3 statement"
    seen: set[str] = set()
    for s in s3_stmts:
        actions = set(as_list(s["Action"]))
        seen |= actions
        resources = as_list(s["Resource"])
        assert actions <= {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}, actions
        assert "*" not in resources and "arn:aws:s3:::*" not in resources, resources
        if "s3:ListBucket" in actions:
            assert actions == {"s3:ListBucket"}, "keep ListBucket in its own statement"
            assert resources == [arn], resources
            cond = s.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
            assert cond, f"ListBucket without an s3:prefix condition: {s}"
            for c in as_list(cond):
                assert any(c.startswith(k) for k in keys), (
                    f"ListBucket condition {c} outside {keys}"
                )
        else:
            for r in resources:
                assert any(r.startswith(p) for p in prefixes), f"{r} outside {prefixes}"
                inner = r.removesuffix(EVENTS_PATTERN) if r.endswith(EVENTS_PATTERN) else r[:-1]
                assert "*" not in inner, f"wildcard inside {r}"
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= seen, seen


def _granted(t: dict, logical_id: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in statements(t, logical_id):
        assert s["Effect"] == "Allow"
        for a in as_list(s["Action"]):
            out.setdefault(a, set()).update(as_list(s["Resource"]))
    return out


def check_job_role(t: dict) -> None:
    """Exactly what the step worker calls (issue 12): read/write the analytics objects,
    read the staging prefix, write only its attempt folders there (never a step
    reference), list only the staging prefix; no delete, no logs (the awslogs driver
    uses the execution role)."""
    role = job_role_id(t)
    check_s3_scoped(t, role)
    trust = t["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "ecs-tasks.amazonaws.com"}]
    bucket = bucket_arn(t)
    assert _granted(t, role) == {
        "s3:GetObject": {f"{bucket}/analytics/*", f"{bucket}/dagster-steps/*"},
        "s3:PutObject": {f"{bucket}/analytics/*", f"{bucket}/dagster-steps/*/attempt-*"},
        "s3:ListBucket": {bucket},
    }, _granted(t, role)
    (listing,) = [s for s in statements(t, role) if "s3:ListBucket" in as_list(s["Action"])]
    assert as_list(listing["Condition"]["StringLike"]["s3:prefix"]) == ["dagster-steps/*"]


def check_no_wildcard_actions(t: dict) -> None:
    for name, s in all_policy_statements(t):
        if s["Effect"] != "Allow":
            continue
        for a in as_list(s["Action"]):
            assert a != "*" and not a.endswith(":*"), f"{name} allows {a}"
        if "*" in as_list(s["Resource"]):
            # Only actions that have no resource-level permissions in IAM; PutMetricData is
            # scoped by its namespace condition instead.
            actions = set(as_list(s["Action"]))
            if actions == {"cloudwatch:PutMetricData"}:
                assert "cloudwatch:namespace" in str(s.get("Condition")), f"{name}: {s}"
                continue
            assert actions <= {
                "batch:DescribeJobs",
                "batch:DescribeJobQueues",
                "ecr:GetAuthorizationToken",
            }, f"{name}: {s['Action']} on *"


def check_pass_role(t: dict) -> None:
    job_role_arn = f"<{job_role_id(t)}.Arn>"
    found = False
    for name, s in all_policy_statements(t):
        actions = as_list(s["Action"])
        if s["Effect"] == "Allow" and any(fnmatch.fnmatchcase("iam:PassRole", a) for a in actions):
            found = True
            assert as_list(s["Resource"]) == [job_role_arn], f"{name} passes {s['Resource']}"
            cond = s.get("Condition", {}).get("StringEquals", {})
            assert cond.get("iam:PassedToService") == "ecs-tasks.amazonaws.com", (
                f"{name}: {s.get('Condition')}"
            )
    assert found, "the host policy must allow passing the job role"


def check_host_policy(t: dict) -> None:
    name, _ = only(t, "AWS::IAM::ManagedPolicy")
    by_action: dict[str, list[dict]] = {}
    for s in statements(t, name):
        assert s["Effect"] == "Allow"
        for a in as_list(s["Action"]):
            by_action.setdefault(a, []).append(s)

    def resources(action: str) -> set[str]:
        assert action in by_action, f"host policy lacks {action}"
        return {r for s in by_action[action] for r in as_list(s["Resource"])}

    assert resources("batch:SubmitJob") == {
        "<JobQueue.JobQueueArn>",
        "arn:aws:batch:eu-west-1:123456789012:job-definition/cocktail-assets-step",
        "arn:aws:batch:eu-west-1:123456789012:job-definition/cocktail-assets-step:*",
    }
    assert resources("batch:DescribeJobs") == {"*"}
    jobs = "arn:aws:batch:eu-west-1:123456789012:job/*"
    (stop,) = by_action["batch:TerminateJob"]
    assert as_list(stop["Resource"]) == [jobs]
    assert stop.get("Condition") == {
        "StringEquals": {"aws:ResourceTag/Project": "cocktail-assets"}
    }, "TerminateJob only on the jobs the launcher tagged"
    (tag,) = by_action["batch:TagResource"]
    assert as_list(tag["Resource"]) == [jobs] and tag.get("Condition") == {
        "StringEquals": {"aws:RequestTag/Project": "cocktail-assets"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["Project"]},
    }, tag.get("Condition")
    assert resources("logs:GetLogEvents") == {
        "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/batch/cocktail-assets:log-stream:*"
    }
    # Only what the launcher, the store and the activity metrics call: nothing deletes,
    # nothing cancels (TerminateJob is used), metrics only in the project's namespace.
    assert set(by_action) == {
        "batch:SubmitJob", "batch:DescribeJobs", "batch:DescribeJobQueues", "batch:TagResource",
        "batch:TerminateJob", "iam:PassRole", "s3:GetObject", "s3:PutObject", "s3:ListBucket",
        "logs:GetLogEvents", "cloudwatch:PutMetricData",
    }, sorted(by_action)
    (metric,) = by_action["cloudwatch:PutMetricData"]
    assert metric.get("Condition") == {
        "StringEquals": {"cloudwatch:namespace": "CocktailAssets"}
    }, metric.get("Condition")
    assert metric["Resource"] == "*"  # PutMetricData has no resource-level permissions
    from cocktail_assets.environments import read_settings

    assert read_settings({}).activity_namespace == "CocktailAssets"  # what the host sends
    check_s3_scoped(t, name)


def check_dashboard(t: dict) -> None:
    """One widget per activity metric: the day's Maximum over one day, for the Site parameter."""
    from cocktail_assets.activity.compute import METRICS

    _, dash = only(t, "AWS::CloudWatch::Dashboard")
    body = json.loads(resolve(t, dash["Properties"]["DashboardBody"]))
    site = t["Parameters"]["MetricsSite"]["Default"]
    shown = []
    for widget in body["widgets"]:
        props = widget["properties"]
        assert widget["type"] == "metric" and props["region"] == PSEUDO["AWS::Region"]
        assert props["stat"] == "Maximum" and props["period"] == 86400, props["title"]
        (metric,) = props["metrics"]
        namespace, name, dimension, value = metric
        assert namespace == "CocktailAssets" and (dimension, value) == ("Site", site), metric
        shown.append(name)
    assert sorted(shown) == sorted(METRICS.values()), shown


def check_log_group(t: dict) -> None:
    _, lg = only(t, "AWS::Logs::LogGroup")
    assert lg["Properties"].get("RetentionInDays") == {"Ref": "LogRetentionDays"}, "no retention"
    assert t["Parameters"]["LogRetentionDays"]["Default"] == 30


def check_outputs(t: dict) -> None:
    outputs = t["Outputs"]
    required = {
        "JobQueueArn",
        "JobQueueName",
        "JobDefinitionArn",
        "AnalyticsBucketName",
        "LogGroupName",
        "RepositoryUri",
        "HostPolicyArn",
        "Region",
    }
    assert required <= set(outputs), required - set(outputs)
    for key, out in outputs.items():
        assert "Export" in out and "Name" in out["Export"], f"{key} has no export"
        assert resolve(t, out["Export"]["Name"]) == f"cocktail-assets-{key}"


CHECKS: dict[str, Callable[[dict], None]] = {
    "spot_graviton": check_spot_graviton,
    "queue": check_queue,
    "job_definition": check_job_definition,
    "retry_strategy": check_retry_strategy,
    "bucket": check_bucket,
    "job_role": check_job_role,
    "execution_role": check_execution_role,
    "no_wildcard_actions": check_no_wildcard_actions,
    "pass_role": check_pass_role,
    "host_policy": check_host_policy,
    "log_group": check_log_group,
    "dashboard": check_dashboard,
    "outputs": check_outputs,
}


# ------------------------------------------------------------------- mutations
def _res(t: dict, name: str) -> dict:
    return t["Resources"][name]["Properties"]


def _ce(t: dict) -> dict:
    return _res(t, "ComputeEnvironment")["ComputeResources"]


def _jd(t: dict) -> dict:
    return _res(t, "JobDefinition")


def _stmt(t: dict, logical_id: str, sid: str) -> dict:
    props = _res(t, logical_id)
    docs = [p["PolicyDocument"] for p in props.get("Policies", [])] + (
        [props["PolicyDocument"]] if "PolicyDocument" in props else []
    )
    return next(s for d in docs for s in d["Statement"] if s.get("Sid") == sid)


def _set(path_fn: Callable[[dict], dict], key: str, value: Any) -> Callable[[dict], None]:
    def mutate(t: dict) -> None:
        path_fn(t)[key] = value

    return mutate


def _delete(path_fn: Callable[[dict], dict], key: str) -> Callable[[dict], None]:
    def mutate(t: dict) -> None:
        del path_fn(t)[key]

    return mutate


def _swap_retry_rules(t: dict) -> None:
    _jd(t)["RetryStrategy"]["EvaluateOnExit"].reverse()


def _drop_exit_rule(t: dict) -> None:
    _jd(t)["RetryStrategy"]["EvaluateOnExit"].pop()


def _secret_any(t: dict) -> None:
    (doc,) = [p["PolicyDocument"] for p in _res(t, "BatchExecutionRole")["Policies"]]
    (cond,) = [s for s in doc["Statement"] if "Fn::If" in s]
    cond["Fn::If"][1]["Resource"] = "*"


def _dashboard_widgets(t: dict) -> list:
    return _res(t, "ActivityDashboard")["DashboardBody"]["Fn::Sub"]


def _dashboard_edit(old: str, new: str, count: int = 1) -> Callable[[dict], None]:
    def mutate(t: dict) -> None:
        sub = _dashboard_widgets(t)
        assert old in sub[0]
        sub[0] = sub[0].replace(old, new, count)

    return mutate


def _drop_tls_deny(t: dict) -> None:
    _res(t, "AnalyticsBucketPolicy")["PolicyDocument"]["Statement"][0]["Effect"] = "Allow"


MUTATIONS: dict[str, tuple[str, Callable[[dict], None]]] = {
    "on-demand": ("spot_graviton", _set(_ce, "Type", "EC2")),
    "best-fit": ("spot_graviton", _set(_ce, "AllocationStrategy", "BEST_FIT_PROGRESSIVE")),
    "x86-family": ("spot_graviton", _set(_ce, "InstanceTypes", ["c7g", "m7g", "r7g", "c7i"])),
    "optimal-types": ("spot_graviton", _set(_ce, "InstanceTypes", ["optimal"])),
    "min-vcpus": ("spot_graviton", _set(_ce, "MinvCpus", 2)),
    "fixed-max-vcpus": ("spot_graviton", _set(_ce, "MaxvCpus", 256)),
    "queue-elsewhere": (
        "queue",
        lambda t: _res(t, "JobQueue")["ComputeEnvironmentOrder"][0].update(
            ComputeEnvironment="arn:aws:batch:eu-west-1:123456789012:compute-environment/other"
        ),
    ),
    "timeout": ("job_definition", _set(_jd, "Timeout", {"AttemptDurationSeconds": 7200})),
    "no-timeout": ("job_definition", _delete(_jd, "Timeout")),
    "fargate": ("job_definition", _set(_jd, "PlatformCapabilities", ["FARGATE"])),
    "secret-env": (
        "job_definition",
        lambda t: _jd(t)["ContainerProperties"]["Environment"].append(
            {"Name": "DB_PASSWORD", "Value": "x"}
        ),
    ),
    "exit-first": ("retry_strategy", _swap_retry_rules),
    "no-exit-rule": ("retry_strategy", _drop_exit_rule),
    "attempts-fixed": ("retry_strategy", lambda t: _jd(t)["RetryStrategy"].update(Attempts=5)),
    "retry-everything": (
        "retry_strategy",
        lambda t: _jd(t)["RetryStrategy"]["EvaluateOnExit"][1].update(Action="RETRY"),
    ),
    "unversioned": (
        "bucket",
        lambda t: _res(t, "AnalyticsBucket")["VersioningConfiguration"].update(Status="Suspended"),
    ),
    "unencrypted": ("bucket", _delete(lambda t: _res(t, "AnalyticsBucket"), "BucketEncryption")),
    "public-policy": (
        "bucket",
        lambda t: _res(t, "AnalyticsBucket")["PublicAccessBlockConfiguration"].update(
            BlockPublicPolicy=False
        ),
    ),
    "acls-enabled": (
        "bucket",
        lambda t: _res(t, "AnalyticsBucket")["OwnershipControls"]["Rules"][0].update(
            ObjectOwnership="ObjectWriter"
        ),
    ),
    "no-activity-expiry": (
        "bucket",
        lambda t: _res(t, "AnalyticsBucket")["LifecycleConfiguration"]["Rules"].pop(1),
    ),
    "tls-allowed": ("bucket", _drop_tls_deny),
    "activity-expiry-old-prefix": (
        "bucket",
        lambda t: _res(t, "AnalyticsBucket")["LifecycleConfiguration"]["Rules"][1].update(
            Prefix={"Fn::Sub": "${AnalyticsPrefix}/activity/"}
        ),
    ),
    "activity-expiry-everything": (
        "bucket",
        lambda t: _res(t, "AnalyticsBucket")["LifecycleConfiguration"]["Rules"][1].update(
            Prefix={"Fn::Sub": "${AnalyticsPrefix}/v1/"}
        ),
    ),
    "activity-retention-90": (
        "bucket", lambda t: t["Parameters"]["ActivityRetentionDays"].update(Default=90),
    ),
    "dashboard-sum": ("dashboard", _dashboard_edit('"stat": "Maximum"', '"stat": "Sum"')),
    "dashboard-hourly": ("dashboard", _dashboard_edit('"period": 86400', '"period": 3600')),
    "dashboard-no-site": ("dashboard", _dashboard_edit('"Site", "${Site}"', '"Site", "dev"')),
    "dashboard-missing-metric": (
        "dashboard", _dashboard_edit('"ActiveUsers"', '"RecipesCreated"'),
    ),
    "host-metrics-other-namespace": (
        "host_policy",
        lambda t: _stmt(t, "DagsterHostPolicy", "PutMetrics")["Condition"]["StringEquals"].update(
            {"cloudwatch:namespace": "*"}
        ),
    ),
    "job-s3-whole-bucket": (
        "job_role",
        _set(
            lambda t: _stmt(t, "BatchJobRole", "ReadWriteAnalytics"),
            "Resource",
            {"Fn::Sub": "${AnalyticsBucket.Arn}/*"},
        ),
    ),
    "job-s3-star": (
        "job_role",
        _set(lambda t: _stmt(t, "BatchJobRole", "ReadWriteAnalytics"), "Resource", "*"),
    ),
    "job-s3-all-actions": (
        "job_role",
        _set(lambda t: _stmt(t, "BatchJobRole", "ReadWriteAnalytics"), "Action", "s3:*"),
    ),
    "job-deletes": (
        "job_role",
        _set(lambda t: _stmt(t, "BatchJobRole", "ReadWriteAnalytics"), "Action",
             ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]),
    ),
    "job-writes-step-references": (
        "job_role",
        _set(lambda t: _stmt(t, "BatchJobRole", "WriteStepEvents"), "Resource",
             {"Fn::Sub": "${AnalyticsBucket.Arn}/${StagingPrefix}/*"}),
    ),
    "job-lists-analytics": (
        "job_role",
        lambda t: _stmt(t, "BatchJobRole", "ListStaging")["Condition"]["StringLike"][
            "s3:prefix"].append({"Fn::Sub": "${AnalyticsPrefix}/*"}),
    ),
    "job-list-unconditioned": (
        "job_role",
        _delete(lambda t: _stmt(t, "BatchJobRole", "ListStaging"), "Condition"),
    ),
    "job-writes-logs": (
        "job_role",
        lambda t: _res(t, "BatchJobRole")["Policies"][0]["PolicyDocument"]["Statement"].append(
            {"Sid": "Logs", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}
        ),
    ),
    "exec-ecr-any-repo": (
        "execution_role",
        _set(lambda t: _stmt(t, "BatchExecutionRole", "EcrPull"), "Resource", "*"),
    ),
    "exec-any-secret": ("execution_role", _secret_any),
    "exec-secret-always": (
        "job_definition",
        lambda t: _jd(t)["ContainerProperties"].update(
            Secrets=[{"Name": "DATABASE_URL", "ValueFrom": {"Ref": "DatabaseUrlSecretArn"}}]
        ),
    ),
    "host-submit-star": (
        "no_wildcard_actions",
        _set(lambda t: _stmt(t, "DagsterHostPolicy", "SubmitSteps"), "Resource", "*"),
    ),
    "pass-any-role": (
        "pass_role",
        _set(lambda t: _stmt(t, "DagsterHostPolicy", "PassJobRole"), "Resource", "*"),
    ),
    "pass-role-anywhere": (
        "pass_role",
        _delete(lambda t: _stmt(t, "DagsterHostPolicy", "PassJobRole"), "Condition"),
    ),
    "host-terminates-untagged": (
        "host_policy",
        _delete(lambda t: _stmt(t, "DagsterHostPolicy", "StopSteps"), "Condition"),
    ),
    "host-cancels": (
        "host_policy",
        _set(lambda t: _stmt(t, "DagsterHostPolicy", "StopSteps"), "Action",
             ["batch:TerminateJob", "batch:CancelJob"]),
    ),
    "host-tags-anything": (
        "host_policy",
        _delete(lambda t: _stmt(t, "DagsterHostPolicy", "TagStepsOnSubmit"), "Condition"),
    ),
    "host-deletes": (
        "host_policy",
        _set(lambda t: _stmt(t, "DagsterHostPolicy", "ReadWritePrefixedObjects"), "Action",
             ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]),
    ),
    "host-puts-metrics-anywhere": (
        "no_wildcard_actions",
        lambda t: _stmt(t, "DagsterHostPolicy", "PutMetrics").pop("Condition"),
    ),
    "host-terminate-star": (
        "host_policy",
        _set(lambda t: _stmt(t, "DagsterHostPolicy", "StopSteps"), "Resource", "*"),
    ),
    "host-s3-whole-bucket": (
        "host_policy",
        _set(
            lambda t: _stmt(t, "DagsterHostPolicy", "ReadWritePrefixedObjects"),
            "Resource",
            {"Fn::Sub": "${AnalyticsBucket.Arn}/*"},
        ),
    ),
    "no-retention": ("log_group", _delete(lambda t: _res(t, "JobLogGroup"), "RetentionInDays")),
    "no-export": ("outputs", _delete(lambda t: t["Outputs"]["JobQueueArn"], "Export")),
    "missing-output": ("outputs", lambda t: t["Outputs"].pop("HostPolicyArn")),
}


# ----------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def template() -> dict:
    return load_template()


def test_cfn_lint_reports_no_errors() -> None:
    proc = subprocess.run(
        [cfn_lint_bin(), "--format", "parseable", "--", str(TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Exit code is a bit mask: 2 = errors, 4 = warnings, 8 = informational.
    assert proc.returncode & ~(4 | 8) == 0, proc.stdout + proc.stderr
    assert proc.returncode == 0, f"cfn-lint warnings:\n{proc.stdout}"


def test_cfn_lint_catches_a_broken_template(template: dict, tmp_path: Path) -> None:
    broken = copy.deepcopy(template)
    _ce(broken)["AllocationStrategy"] = "CHEAPEST_PLEASE"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    proc = subprocess.run(
        [cfn_lint_bin(), "--", str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode & 2, proc.stdout + proc.stderr


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_template(template: dict, check: str) -> None:
    CHECKS[check](template)


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_check_fails_on_broken_template(template: dict, mutation: str) -> None:
    check, mutate = MUTATIONS[mutation]
    broken = copy.deepcopy(template)
    mutate(broken)
    with pytest.raises(AssertionError):
        CHECKS[check](broken)


def test_every_check_has_a_failing_mutation() -> None:
    assert {check for check, _ in MUTATIONS.values()} == set(CHECKS)
