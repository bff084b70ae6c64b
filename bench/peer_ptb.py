"""The peer for bench/telegram.py: the bench survey (bench/survey.toml: keyword TREFRAGOR, three
questions) written the way a python-telegram-bot bot is usually written: a ConversationHandler
with the conversation state in memory, nothing durable. Its own aiohttp webhook checks the
secret token, hands each update to `application.process_update` and answers 200 only after
the handler (and so its replies) finished. Replies go to the Bot API at --api-base-url (the
fake Bot API in the benchmark). The texts and the number of replies per step are the service's.

    .venv/bin/python bench/peer_ptb.py --port PORT --api-base-url URL --token TOKEN --secret S
"""

from __future__ import annotations

import argparse
import hmac
import json
import sys
import warnings
from pathlib import Path

# Run as `python bench/peer_ptb.py`, this folder comes first on sys.path, and its telegram.py
# (the benchmark) would shadow the python-telegram-bot package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from aiohttp import web
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

ORGANISATION = "Benchkommun"
INTRO = (
    f"Hej! {ORGANISATION} vill ställa tre korta frågor om din kontakt med oss. Det är frivilligt "
    "och du är anonym."
)
HELPED = "Har stödet hjälpt dig?"
CHOICES = (("yes", "Ja"), ("partly", "Delvis"), ("no", "Nej"))
SCORE = "Hur nöjd är du med stödet? Svara med en siffra från 1 till 10."
BETTER = "Vad kan vi göra bättre? Skriv med egna ord."
THANKS = "Tack för dina svar!"
ASK_CHOICE = "Svara med en siffra från 1 till 3."
ASK_NUMBER = "Svara med en siffra från 1 till 10."

STATE_HELPED, STATE_SCORE, STATE_BETTER = range(3)
Context = ContextTypes.DEFAULT_TYPE


def helped_markup() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=choice)] for choice, label in CHOICES]
    )


def choice_of(text: str) -> str | None:
    """ "2", "Delvis" or "delvis" -> "partly"."""
    text = text.strip().lower()
    for i, (choice, label) in enumerate(CHOICES, start=1):
        if text in (str(i), label.lower(), choice):
            return choice
    return None


async def start(update: Update, context: Context) -> int:
    assert update.effective_chat is not None
    context.user_data["answers"] = {}
    await context.bot.send_message(update.effective_chat.id, INTRO)
    await context.bot.send_message(update.effective_chat.id, HELPED, reply_markup=helped_markup())
    return STATE_HELPED


async def helped(update: Update, context: Context) -> int:
    assert update.effective_chat is not None
    if update.callback_query is not None:
        await update.callback_query.answer()
        choice = choice_of(update.callback_query.data or "")
    else:
        assert update.message is not None
        choice = choice_of(update.message.text or "")
    if choice is None:
        await context.bot.send_message(update.effective_chat.id, ASK_CHOICE)
        return STATE_HELPED
    context.user_data["answers"]["helped"] = choice
    await context.bot.send_message(update.effective_chat.id, SCORE)
    return STATE_SCORE


async def score(update: Update, context: Context) -> int:
    assert update.effective_chat is not None and update.message is not None
    text = (update.message.text or "").strip()
    if not (text.isdigit() and 1 <= int(text) <= 10):
        await context.bot.send_message(update.effective_chat.id, ASK_NUMBER)
        return STATE_SCORE
    context.user_data["answers"]["score"] = int(text)
    await context.bot.send_message(update.effective_chat.id, BETTER)
    return STATE_BETTER


async def better(update: Update, context: Context) -> int:
    assert update.effective_chat is not None and update.message is not None
    context.user_data["answers"]["better"] = (update.message.text or "")[:500]
    await context.bot.send_message(update.effective_chat.id, THANKS)
    return ConversationHandler.END


def build_application(token: str, api_base_url: str) -> Application:
    # No Updater: updates arrive through our own webhook below, not by polling.
    application = (
        Application.builder()
        .token(token)
        .base_url(f"{api_base_url.rstrip('/')}/bot")
        .updater(None)
        .build()
    )
    text = filters.TEXT & ~filters.COMMAND
    with warnings.catch_warnings():
        # per_message=False is right here (one conversation per chat); PTB warns that button
        # presses are then tracked per chat, which is what we want.
        warnings.simplefilter("ignore", PTBUserWarning)
        conversation = ConversationHandler(
            entry_points=[MessageHandler(filters.Regex(r"^\s*(?i:trefragor)\s*$"), start)],
            states={
                STATE_HELPED: [MessageHandler(text, helped), CallbackQueryHandler(helped)],
                STATE_SCORE: [MessageHandler(text, score)],
                STATE_BETTER: [MessageHandler(text, better)],
            },
            fallbacks=[],
        )
    application.add_handler(conversation)
    return application


def webhook_app(application: Application, secret: str) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=403, text="invalid secret")
        try:
            data = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="invalid JSON")
        update = Update.de_json(data, application.bot)
        await application.process_update(update)
        return web.Response(text="ok")

    async def startup(app: web.Application) -> None:
        await application.initialize()
        await application.start()

    async def cleanup(app: web.Application) -> None:
        await application.stop()
        await application.shutdown()

    app = web.Application()
    app.router.add_post("/webhooks/telegram", handle)
    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    application = build_application(args.token, args.api_base_url)
    web.run_app(
        webhook_app(application, args.secret),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=lambda _: print("peer ready", flush=True),
    )


if __name__ == "__main__":
    main()
