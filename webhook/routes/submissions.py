"""POST /submissions: files uploaded as one folder, committed on the caller's behalf and submitted
exactly as a push of that folder would be."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from leadersboard.jobs import JobStatus

from ..deps import CurrentUser, DependenciesUp, ServiceDep
from ..intake.uploads import (
    FILES_FIELD,
    BranchBusy,
    Upload,
    UploadError,
    UploadRefused,
    UploadRejected,
    UploadTooLarge,
)
from ..multipart import FormReader, discard_rest

router = APIRouter(prefix="/submissions", tags=["submissions"])

_TEXT = {"type": "string"}
FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [FILES_FIELD],
    "properties": {
        FILES_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "the folder's files; a file name may hold '/' for subfolders"},
        "entrypoint": {**_TEXT, "default": "main.py"},
        "config_file": {**_TEXT, "default": "config.yaml"},
        "metadata": {**_TEXT, "description": 'a JSON object, e.g. {"method": "PaDiM", "description": "..."}'},
        "folder": {**_TEXT, "description": "the folder's name (default: from metadata.method, made unique)"},
        "branch": {**_TEXT, "description": "one of your branches (default: users/<you>)"},
        "message": {**_TEXT, "description": "the commit message"},
        "run": {"type": "string", "enum": ["true", "false"], "default": "true",
                "description": "false records the submission without a job (like git push -o run=false)"},
        "resource_class": _TEXT,
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed request, or the folder breaks a rule (the rule messages are in detail)"},
    401: {"description": "missing, invalid or revoked token"},
    409: {"description": "the branch kept moving under the upload; nothing was changed"},
    413: {"description": "a file, a field or the whole upload is over its limit"},
    503: {"description": "Redis or MLflow is not answering right now: nothing was changed (Retry-After)"},
    429: {"description": "over the hourly or the active-jobs limit (Retry-After, remaining quota headers)"},
}


@router.post("", status_code=201, responses=ERRORS, dependencies=[DependenciesUp],
             openapi_extra={"requestBody": {"required": True,
                                            "content": {"multipart/form-data": {"schema": FORM_SCHEMA}}}})
async def create_submission(request: Request, caller: CurrentUser, service: ServiceDep) -> JSONResponse:
    """Commit the uploaded files as one folder on the caller's branch and submit it (rules, limits, job)."""
    reader = FormReader(service.settings.limits)
    try:
        # Read here, not by FastAPI: every limit is checked while the body arrives.
        await reader.read(request.headers, request.stream())
        upload = Upload.from_form(reader.fields, reader.files)
        sub = await service.intake.upload(caller.name, upload)
    except UploadRejected as exc:
        problems = [{"rule": p.rule, "path": p.path, "line": p.line, "message": p.message, "fix": p.fix}
                    for p in exc.problems]
        return JSONResponse({"detail": str(exc), "problems": problems}, status_code=400)
    except UploadTooLarge as exc:
        if reader.body_left:
            await discard_rest(request.receive)
        return JSONResponse({"detail": str(exc)}, status_code=413, headers={"Connection": "close"})
    except UploadError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    except UploadRefused as exc:
        return JSONResponse({"detail": str(exc)}, status_code=429, headers=exc.refusal.headers())
    except BranchBusy as exc:
        return JSONResponse({"detail": str(exc)}, status_code=409)
    except ClientDisconnect:
        return JSONResponse({"detail": "The upload ended early"}, status_code=400)
    finally:
        reader.close()
    return JSONResponse({
        "submission_id": sub.id, "job_id": sub.job_id, "status": JobStatus.PENDING if sub.job_id else None,
        "folder": sub.folder, "branch": sub.ref.removeprefix("refs/heads/"), "commit": sub.commit_id,
        "benchmark": sub.benchmark,
        **({"note": note} if (note := service.intake.waiting_note(sub)) else {}),
    }, status_code=201)
