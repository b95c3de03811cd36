"""The simulator's custom actions and jobs: what `caption-bridge register`
makes, and the Iconik jobs through which a click's work shows its progress.

`GET/POST /API/assets/v1/custom_actions/{context}/`, `PUT/DELETE` one by
id; `POST /API/jobs/v1/jobs/` and `PATCH` one. Each job keeps, for tests,
the history of its states and progress in the order Iconik got the writes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from simulator.state import IconikState, errors, now


async def actions(sim: IconikState, request: Request) -> Response:
    context = request.path_params["context"]
    if request.method == "GET":
        mine = [a for a in sim.custom_actions.values() if a["context"] == context]
        return JSONResponse({"objects": mine})
    body = json.loads(await request.body())
    missing = [k for k in ("title", "url") if not body.get(k)]
    if missing:
        return errors(400, f"missing {missing}")
    action = {
        **body,
        "context": context,
        "id": str(uuid.uuid4()),
        "status": "HEALTHY",
        "date_created": now(),
        "date_modified": now(),
    }
    sim.custom_actions[action["id"]] = action
    return JSONResponse(action, status_code=201)


async def action(sim: IconikState, request: Request) -> Response:
    found = sim.custom_actions.get(request.path_params["action_id"])
    if found is None or found["context"] != request.path_params["context"]:
        return errors(404, "Custom action does not exist")
    if request.method == "DELETE":
        del sim.custom_actions[found["id"]]
        return Response(status_code=204)
    found.update(json.loads(await request.body()), id=found["id"], date_modified=now())
    return JSONResponse(found)


async def create_job(sim: IconikState, request: Request) -> Response:
    job = json.loads(await request.body())
    job.update(id=str(uuid.uuid4()), date_created=now(), date_modified=now())
    sim.jobs[job["id"]] = job
    return JSONResponse(_record_job_state(job), status_code=201)


async def update_job(sim: IconikState, request: Request) -> Response:
    job = sim.jobs.get(request.path_params["job_id"])
    if job is None:
        return errors(404, "Job does not exist")
    job.update(json.loads(await request.body()), date_modified=now())
    return JSONResponse(_record_job_state(job))


def _record_job_state(job: dict[str, Any]) -> dict[str, Any]:
    """Note the job's state in its history (for tests: in the order Iconik got the
    writes); return the job as Iconik shows it, without that history."""
    job.setdefault("history", []).append(job.get("status"))
    job.setdefault("processed_history", []).append(job.get("progress_processed"))
    return {k: v for k, v in job.items() if k not in ("history", "processed_history")}


ENDPOINTS = [
    ("/API/jobs/v1/jobs/", create_job, ["POST"]),
    ("/API/jobs/v1/jobs/{job_id}/", update_job, ["PATCH"]),
    ("/API/assets/v1/custom_actions/{context}/", actions, ["GET", "POST"]),
    ("/API/assets/v1/custom_actions/{context}/{action_id}/", action, ["PUT", "DELETE"]),
]
