"""The staff web app's texts: one message table per language, Swedish first.

Page modules add their own texts with `add_messages({"sv": {...}, "en": {...}})` at import;
every language must have the same keys (a test checks). A text may hold `{name}` fields."""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("sv", "en")
DEFAULT_LANGUAGE = "sv"
LANGUAGE_NAMES = {"sv": "Svenska", "en": "English"}

MESSAGES: dict[str, dict[str, str]] = {
    "sv": {
        "app.name": "Brukardialog",
        "app.staff": "Personal",
        "skip": "Hoppa till innehållet",
        "nav.label": "Huvudmeny",
        "nav.overview": "Översikt",
        "nav.campaigns": "Kampanjer",
        "nav.contacts": "Kontakter",
        "nav.results": "Resultat",
        "nav.feedback": "Återkoppling",
        "nav.followups": "Uppföljningar",
        "nav.surveys": "Enkäter",
        "nav.audit": "Logg",
        "nav.users": "Användare",
        "lang.switch": "Språk",
        "lang.other": "In English",
        "user.signed_in_as": "Inloggad som {name} ({role})",
        "role.viewer": "läsare",
        "role.analyst": "analytiker",
        "role.admin": "administratör",
        "sign_out": "Logga ut",
        "login.title": "Logga in",
        "login.username": "Användarnamn",
        "login.password": "Lösenord",
        "login.submit": "Logga in",
        "login.failed": (
            "Inloggningen misslyckades: fel användarnamn eller lösenord. Efter 5 misslyckade "
            "försök måste kontot vänta 15 minuter."
        ),
        "login.missing": "Skriv både användarnamn och lösenord.",
        "login.expired": "Du har loggats ut eftersom sessionen tog slut. Logga in igen.",
        "login.signed_out": "Du är utloggad.",
        "login.help": (
            "Har du inget konto? Be en administratör lägga till dig med kommandot "
            "brukardialog users add."
        ),
        "error.title": "Något gick fel",
        "error.400": "Begäran gick inte att förstå.",
        "error.401": "Du behöver logga in.",
        "error.403": "Du har inte behörighet att göra detta.",
        "error.403.csrf": (
            "Formuläret var inaktuellt eller saknade sin säkerhetskod, så inget ändrades. "
            "Ladda om sidan och försök igen."
        ),
        "error.403.session": "Sessionen har tagit slut, så inget ändrades. Logga in igen.",
        "error.404": "Sidan finns inte.",
        "error.405": "Den åtgärden går inte att göra här.",
        "error.413": "Filen eller formuläret är för stort.",
        "error.500": "Ett oväntat fel inträffade. Inget halvfärdigt sparades; försök igen.",
        "error.503": (
            "Tjänsten är tillfälligt otillgänglig (databasen svarar inte). Försök snart igen."
        ),
        "error.back": "Till översikten",
        "error.sign_in": "Logga in",
        "confirm": "Bekräfta",
        "cancel": "Avbryt",
        "save": "Spara",
        "search": "Sök",
        "next_page": "Nästa sida",
        "prev_page": "Första sidan",
        "none": "–",
        "yes": "ja",
        "no": "nej",
    },
    "en": {
        "app.name": "Brukardialog",
        "app.staff": "Staff",
        "skip": "Skip to content",
        "nav.label": "Main menu",
        "nav.overview": "Overview",
        "nav.campaigns": "Campaigns",
        "nav.contacts": "Contacts",
        "nav.results": "Results",
        "nav.feedback": "Feedback",
        "nav.followups": "Follow-ups",
        "nav.surveys": "Surveys",
        "nav.audit": "Audit log",
        "nav.users": "Users",
        "lang.switch": "Language",
        "lang.other": "På svenska",
        "user.signed_in_as": "Signed in as {name} ({role})",
        "role.viewer": "viewer",
        "role.analyst": "analyst",
        "role.admin": "admin",
        "sign_out": "Sign out",
        "login.title": "Sign in",
        "login.username": "User name",
        "login.password": "Password",
        "login.submit": "Sign in",
        "login.failed": (
            "Sign-in failed: wrong user name or password. After 5 failed attempts the account "
            "waits 15 minutes."
        ),
        "login.missing": "Enter both user name and password.",
        "login.expired": "You were signed out because your session ended. Sign in again.",
        "login.signed_out": "You are signed out.",
        "login.help": (
            "No account? Ask an administrator to add you with the command brukardialog users add."
        ),
        "error.title": "Something went wrong",
        "error.400": "The request could not be understood.",
        "error.401": "You need to sign in.",
        "error.403": "You are not allowed to do this.",
        "error.403.csrf": (
            "The form was out of date or missing its security code, so nothing was changed. "
            "Reload the page and try again."
        ),
        "error.403.session": "Your session has ended, so nothing was changed. Sign in again.",
        "error.404": "There is no such page.",
        "error.405": "That action cannot be done here.",
        "error.413": "The file or form is too large.",
        "error.500": "An unexpected error happened. Nothing half-done was saved; try again.",
        "error.503": (
            "The service is briefly unavailable (the database does not answer). Try again soon."
        ),
        "error.back": "To the overview",
        "error.sign_in": "Sign in",
        "confirm": "Confirm",
        "cancel": "Cancel",
        "save": "Save",
        "search": "Search",
        "next_page": "Next page",
        "prev_page": "First page",
        "none": "–",
        "yes": "yes",
        "no": "no",
    },
}


def add_messages(tables: Mapping[str, Mapping[str, str]]) -> None:
    """Add a page module's texts (one table per language in LANGUAGES)."""
    for lang in LANGUAGES:
        MESSAGES[lang].update(tables[lang])


def translate(lang: str, key: str, **fields: object) -> str:
    """The text for `key` in `lang` (Swedish, then the key itself, when it is missing)."""
    table = MESSAGES.get(lang, MESSAGES[DEFAULT_LANGUAGE])
    template = table.get(key) or MESSAGES[DEFAULT_LANGUAGE].get(key) or key
    return template.format(**fields) if fields else template


def pick_language(value: str | None) -> str:
    """A supported language code from a cookie or query value; Swedish otherwise."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE
