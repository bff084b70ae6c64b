"""The floor for bench/inbound.py: the least any signed-webhook handler must do, in its own
process. aiohttp reads the form, checks the X-Twilio-Signature with twilio's RequestValidator,
inserts one row with the standard library's sqlite3 and commits (WAL, synchronous=NORMAL: the
pragmas the service uses), then answers the empty TwiML the service answers.

    .venv/bin/python bench/floor.py --port PORT --database PATH --public-url URL --token TOKEN
"""

from __future__ import annotations

import argparse
import sqlite3

from aiohttp import web
from twilio.request_validator import RequestValidator

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def floor_app(database: str, public_url: str, token: str) -> web.Application:
    db = sqlite3.connect(database)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY, sid TEXT, body TEXT)")
    db.commit()
    validator = RequestValidator(token)

    async def handle(request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(f"{public_url}{request.path_qs}", form, signature):
            return web.Response(status=403, text="invalid signature")
        db.execute(
            "INSERT INTO floor (sid, body) VALUES (?, ?)",
            (form.get("MessageSid"), form.get("Body")),
        )
        db.commit()
        return web.Response(text=TWIML_EMPTY, content_type="text/xml")

    async def close(app: web.Application) -> None:
        db.close()

    app = web.Application()
    app.router.add_post("/webhooks/twilio", handle)
    app.on_cleanup.append(close)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--public-url", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    web.run_app(
        floor_app(args.database, args.public_url, args.token),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=lambda _: print("floor ready", flush=True),
    )


if __name__ == "__main__":
    main()
