"""A stand-in for the Batch compute environment, driving jobs submitted to the moto server.

moto's Batch accepts the API calls (queues, definitions, SubmitJob with its validation,
DescribeJobs, TerminateJob) but cannot run containers here. This host takes each submitted
job, moves it through RUNNABLE and RUNNING as Batch would, runs the job's command the way the
image does (ENTRYPOINT ``cocktail-assets-step`` + the job's command) with the job's
environment, and sets the outcome: SUCCEEDED / FAILED "Essential container in task exited",
a Spot reclaim ("Host EC2 ... terminated") once the step has started, or, when TerminateJob
was called, stops the container with SIGTERM like ECS does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from cocktail_assets.batch.events import attempt_dir_of_ref, list_keys, parse_s3_uri

ROOT = Path(__file__).resolve().parents[3]
SPOT_REASON = "Host EC2 (instance i-0123456789abcdef0) terminated."
EXIT_REASON = "Essential container in task exited"


def worker_command() -> list[str]:
    script = Path(sys.executable).with_name("cocktail-assets-step")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cocktail_assets.batch.worker"]


@dataclass
class Play:
    """What the host does with one submitted job: ``run`` it, or ``reclaim`` its instance
    once the step's events on S3 contain ``after``; ``env`` is added to the container's."""

    action: str = "run"
    env: dict[str, str] = field(default_factory=dict)
    after: str = ""


class BatchHost:
    def __init__(
        self, base_env: dict[str, str], secrets: dict[str, str], plays: list[Play],
        log_dir: Path,
    ) -> None:
        self.base_env = base_env
        self.secrets = secrets  # what the job definition injects from Secrets Manager
        self.plays = plays
        self.log_dir = log_dir
        self.jobs: list[str] = []
        self.terminated: list[str] = []
        self.errors: list[BaseException] = []
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._threads: list[threading.Thread] = []
        self._s3 = boto3.client("s3")

    # moto's batch_simple backend calls this instead of marking the job finished at once
    def accept(self, include_start_attempt: bool, job: Any) -> None:
        job.backend._jobs[job.job_id] = job
        index = len(self.jobs)
        self.jobs.append(job.job_id)
        play = self.plays[index] if index < len(self.plays) else Play()
        thread = threading.Thread(target=self._guarded, args=(job, play), daemon=True)
        self._threads.append(thread)
        thread.start()

    def output(self, job_id: str) -> str:
        path = self.log_dir / f"{job_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def settle(self, timeout: float = 30) -> None:
        """Wait until every job has reached its end (Batch stops containers asynchronously)."""
        for thread in self._threads:
            thread.join(timeout)

    def close(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.kill()
        for thread in self._threads:
            thread.join(30)

    def _guarded(self, job: Any, play: Play) -> None:
        try:
            self._play(job, play)
        except BaseException as error:  # surfaced by the test, not lost in a thread
            self.errors.append(error)
            job.job_stopped_reason = f"test host error: {error}"
            job._mark_stopped(success=False)

    def _play(self, job: Any, play: Play) -> None:
        time.sleep(0.1)
        job.status = "RUNNABLE"
        time.sleep(0.1)
        if job.stop:  # terminated before it started
            self.terminated.append(job.job_id)
            job._mark_stopped(success=False)
            return
        job.job_started_at = datetime.now()
        job.log_stream_name = job._stream_name
        job._start_attempt()
        job.status = "RUNNING"
        details = job._container_details()
        env = {e["name"]: e["value"] for e in details["environment"]}
        command = [*worker_command(), *details["command"]]
        log_path = self.log_dir / f"{job.job_id}.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                command, env={**self.base_env, **env, **self.secrets, **play.env}, cwd=ROOT,
                stdout=log_file, stderr=subprocess.STDOUT,
            )
        self.processes[job.job_id] = proc
        folder = None
        if play.action == "reclaim":
            bucket, key = parse_s3_uri(details["command"][0])
            folder = attempt_dir_of_ref(key, int(env["COCKTAIL_STEP_ATTEMPT"]))
        while proc.poll() is None:
            if job.stop:  # TerminateJob: ECS sends SIGTERM, SIGKILL after the stop timeout
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self.terminated.append(job.job_id)
                job.exit_code = proc.returncode
                job._mark_stopped(success=False)
                return
            if folder and self._written(bucket, folder, play.after):
                proc.kill()  # the instance is gone: no SIGTERM grace, no final flush
                proc.wait()
                job.job_stopped_reason = SPOT_REASON
                job._mark_stopped(success=False)
                return
            time.sleep(0.05)
        job.exit_code = proc.returncode
        if proc.returncode != 0:
            job.job_stopped_reason = EXIT_REASON
        job._mark_stopped(success=proc.returncode == 0)

    def _written(self, bucket: str, folder: str, text: str) -> bool:
        for key in list_keys(self._s3, bucket, folder + "/events-"):
            if text in self._s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode():
                return True
        return False


def base_env(endpoint: str) -> dict[str, str]:
    """The container's environment outside the job's: network (moto), credentials (the job
    role's), and the code on the path (the image has it installed)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
