"""GET /exports/{token}: the CSV download behind an /export link.

The token is the credential (core/exports.py): a bad or expired one gets 401, a holder who is no
longer an admin 403, both as a short text page and audited. The CSV is streamed in batches, so
a million audit records never sit in memory. Tokens must not reach the logs: the access logger
below shortens export paths.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_log import AccessLogger

from bot.admin_commands import EXPORT_PATH
from core import texts
from core.admin import AdminService
from core.errors import InvalidInput, NotAuthorised, ServiceUnavailable

# Excel reads UTF-8 CSV correctly only with a byte order mark.
UTF8_BOM = "\ufeff"


def export_routes(admin: AdminService) -> list[web.RouteDef]:
    async def download(request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        try:
            grant = await admin.open_export(token)
        except InvalidInput as problem:
            return _refusal(401, str(problem))
        except NotAuthorised:
            return _refusal(403, texts.EXPORT_FORBIDDEN)
        except ServiceUnavailable as problem:
            return _refusal(503, str(problem))
        now = admin.now()
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{grant.file_name(now)}"',
                # The file holds personal data: no shared caches, no copies on disk.
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )
        await response.prepare(request)
        await response.write(UTF8_BOM.encode())
        async for chunk in admin.export_csv(grant.kind):
            await response.write(chunk.encode("utf-8"))
        await response.write_eof()
        return response

    return [web.get(EXPORT_PATH + "{token}", download, allow_head=False)]


def _refusal(status: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=message,
        content_type="text/plain",
        headers={"Cache-Control": "no-store"},
    )


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access log, with export tokens cut from the logged request line."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path.startswith(EXPORT_PATH):
            request = request.clone(rel_url=EXPORT_PATH + "<token>")
        super().log(request, response, time)
