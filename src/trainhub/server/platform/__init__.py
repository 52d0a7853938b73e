"""The Platform endpoints of ultralytics 8.4: the third adapter beside api/ and web/.

Routes parse the Platform's bodies and call services/ (runs, console, staging, names); they
hold no SQL (docs/protocol/platform.md §9).
"""

from fastapi import APIRouter

from trainhub.server.platform import account, events, files, uploads

router = APIRouter()
for _module in (events, uploads, account, files):
    router.include_router(_module.router)
