"""The job queue that feeds the workers: exports and predictions (docs/decisions/0017-job-queue.md).

The server only puts jobs on the queue and reads results off it; the jobs run in `trainhub worker`
processes (the package `trainhub.worker`), which the server never imports: torch and ultralytics
stay out of the server process. Everything on the queue is JSON, no pickles (`serializer.py`).
"""
