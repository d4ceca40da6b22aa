"""Fixtures for the Batch step launcher: moto Batch (queue, job definition) and a host."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
import requests

from tests.cocktail_assets.batch.batch_host import BatchHost, Play, base_env

STAGING_PREFIX = "dagster-steps"


@pytest.fixture(scope="session")
def moto_batch(moto_endpoint: str) -> Iterator[dict[str, str]]:
    """A job queue and a job definition (shaped like deploy/cloudformation.yaml's) on moto.

    moto's Docker-free Batch backend is switched on and job states are frozen (moved only by
    the test host) for the session, then restored.
    """
    requests.post(f"{moto_endpoint}/moto-api/config", json={"batch": {"use_docker": False}})
    requests.post(
        f"{moto_endpoint}/moto-api/state-manager/set-transition",
        json={"model_name": "batch::job",
              "transition": {"progression": "manual", "times": 10**9}},
    )
    suffix = uuid.uuid4().hex[:8]
    role = boto3.client("iam").create_role(
        RoleName=f"batch-service-{suffix}", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    batch = boto3.client("batch")
    environment = batch.create_compute_environment(
        computeEnvironmentName=f"steps-{suffix}", type="UNMANAGED", state="ENABLED",
        serviceRole=role,
    )
    queue = batch.create_job_queue(
        jobQueueName=f"cocktail-assets-{suffix}", state="ENABLED", priority=1,
        computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}
        ],
    )
    definition = batch.register_job_definition(
        jobDefinitionName=f"cocktail-assets-step-{suffix}",
        type="container",
        parameters={"run_ref": "s3://unset"},
        containerProperties={
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/cocktail-assets:test",
            "command": ["Ref::run_ref"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}
            ],
            "environment": [
                {"name": "COCKTAIL_ENV", "value": "production"},
                {"name": "ANALYTICS_BUCKET", "value": "bucket-of-the-definition"},
                {"name": "ANALYTICS_PREFIX", "value": "analytics"},
                {"name": "BATCH_STAGING_PREFIX", "value": STAGING_PREFIX},
            ],
        },
    )
    yield {
        "queue": queue["jobQueueName"],
        "queue_arn": queue["jobQueueArn"],
        "definition": definition["jobDefinitionName"],
        "definition_arn": definition["jobDefinitionArn"],
    }
    requests.post(
        f"{moto_endpoint}/moto-api/state-manager/unset-transition",
        json={"model_name": "batch::job"},
    )
    requests.post(f"{moto_endpoint}/moto-api/config", json={"batch": {"use_docker": True}})


@pytest.fixture
def batch_setup(
    moto_endpoint: str, moto_batch: dict[str, str], s3_bucket: str, db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The host process's environment for a production-like run with the launcher bound."""
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO ingredients (name) VALUES ('Gin'), ('Lime juice')")
    for name, value in {
        "ANALYTICS_BUCKET": s3_bucket,
        "ANALYTICS_PREFIX": "analytics",
        "BATCH_JOB_QUEUE": moto_batch["queue"],
        "BATCH_JOB_DEFINITION": moto_batch["definition"],
        "BATCH_STAGING_PREFIX": STAGING_PREFIX,
        "DATABASE_URL": db_url,
    }.items():
        monkeypatch.setenv(name, value)
    return {**moto_batch, "bucket": s3_bucket, "db_url": db_url, "endpoint": moto_endpoint}


@pytest.fixture
def batch_host(
    batch_setup: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[BatchHost]:
    """The Batch host of the test; set ``host.plays`` before running the job."""
    from moto.batch_simple.models import BatchSimpleBackend

    logs = tmp_path / "container-logs"
    logs.mkdir()
    host = BatchHost(
        base_env(batch_setup["endpoint"]), {"DATABASE_URL": batch_setup["db_url"]}, [], logs
    )
    monkeypatch.setattr(BatchSimpleBackend, "_mark_job_as_finished", host.accept)
    yield host
    host.close()
    assert not host.errors, host.errors


__all__ = ["Play"]
