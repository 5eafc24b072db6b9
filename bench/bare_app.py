"""The bare baseline: the same framework (FastAPI on uvicorn) answering 202 and doing nothing else.

It gets the same garbage-collector setting as intake-api (``tune_gc``, once the app is built), so the two differ
only in the work a filing does."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.intake.entrypoints.http import tune_gc

app = FastAPI()


@app.post("/v1/complaints")
async def accept(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "received"}, status_code=202)


tune_gc()
