"""`consultant web`: serve the review desk and the operator's view with uvicorn."""
from __future__ import annotations

import typer

from ..logs import uvicorn_config
from . import STATE, app, console


@app.command()
def web(host: str = typer.Option(None, "--host", help="Listen here (default: web.host)."),
        port: int = typer.Option(None, "--port", help="Listen on this port (default: web.port).")):
    """Serve the review desk (needs CONSULTANT_WEB__SECRET_KEY or web.secret_key_file)."""
    import uvicorn

    from ..web import create_app

    settings = STATE.settings
    desk = create_app(settings, STATE.require_schema())
    host, port = host or settings.web.host, port or settings.web.port
    console.print(f"review desk on http://{host}:{port}/ (Ctrl-C to stop)")
    # proxy_headers: behind a TLS proxy on this machine, X-Forwarded-Proto makes cookies Secure and
    # X-Forwarded-For gives the address that login throttling counts.
    uvicorn.run(desk, host=host, port=port, proxy_headers=True, log_level=settings.log.level.lower(),
                server_header=False, log_config=uvicorn_config(settings.log.level, settings.log.file))
