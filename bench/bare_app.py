"""The bare baseline: the same framework (FastAPI on uvicorn) answering 202 and doing nothing else."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/v1/complaints")
async def accept(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "received"}, status_code=202)
