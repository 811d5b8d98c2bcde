"""Accounts: creation, authentication with failed-login throttling, passwords, administration.

One place for these rules; the auth and admin pages and the CLI all call it. Functions change the
session; the caller (request or CLI command) commits."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models import LoginThrottle, User, new_session_nonce
from app.validation import clean_email, clean_password

log = logging.getLogger(__name__)


class AccountError(Exception):
    """A request about an account that cannot be done; the message is fit to show.

    `field` names the form field the message belongs to ("email", "password"), if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def hash_password(password: str) -> str:
    """A salted hash with the configured scheme (scrypt by default)."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def user_count() -> int:
    """How many accounts exist."""
    return db.session.scalar(select(func.count(User.id))) or 0


def find_user(email: str) -> User | None:
    """The account for `email` (any letter case), or None."""
    try:
        normalised = clean_email(email)
    except ValueError:
        return None
    return db.session.scalar(select(User).where(User.email == normalised))


SIGN_UP_CLOSED = "Sign-up is closed. Ask the administrator to create an account for you."


def create_user(email: str, password: str, *, is_admin: bool = False, only_first: bool = False) -> User:
    """Create an account; the very first account is always an administrator. `only_first`: refuse unless
    it is the first (the "first-user" sign-up, whose earlier check may have seen no account a moment before
    another sign-up committed one)."""
    try:
        email = clean_email(email)
    except ValueError as exc:
        raise AccountError(str(exc), "email") from exc
    try:
        clean_password(password, email)
    except ValueError as exc:
        raise AccountError(str(exc), "password") from exc
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError("An account with that email already exists.", "email")
    first = user_count() == 0
    if only_first and not first:
        raise AccountError(SIGN_UP_CLOSED)
    user = User(
        email=email, password_hash=hash_password(password), is_admin=is_admin or first, founder=True if first else None
    )
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError as exc:
        # Another sign-up committed between our check and this insert: the same email, or (on a new
        # install) the first account, whose founder flag is unique. The caller rolls back.
        log.warning("Account creation refused: another account was created at the same moment")
        if first:
            raise AccountError("Another account was created at the same moment. Please try again.") from exc
        raise AccountError("An account with that email already exists.", "email") from exc
    log.info("Created account %s%s", user.id, " (administrator)" if user.is_admin else "")
    return user


def registration_open(policy: str) -> bool:
    """Whether the sign-up page accepts a new account under REGISTRATION `policy`."""
    if policy == "open":
        return True
    if policy == "first-user":
        return user_count() == 0
    return False


def register(email: str, password: str, policy: str) -> User:
    """Self-service sign-up, subject to the registration policy."""
    if not registration_open(policy):
        raise AccountError(SIGN_UP_CLOSED)
    return create_user(email, password, only_first=policy == "first-user")


def set_password(user: User, password: str) -> None:
    """Replace the password and sign the user out of every other session."""
    try:
        clean_password(password, user.email)
    except ValueError as exc:
        raise AccountError(str(exc), "password") from exc
    user.password_hash = hash_password(password)
    user.session_nonce = new_session_nonce()


def change_password(user: User, current: str, new: str) -> None:
    """A user's own password change: the current password must be right."""
    if not check_password_hash(user.password_hash, current or ""):
        raise AccountError("Your current password is not correct.")
    set_password(user, new)


@dataclass(frozen=True)
class LoginResult:
    """The outcome of a sign-in attempt."""

    user: User | None
    retry_after: int = 0  # seconds; > 0 means throttled
    message: str | None = None


_DUMMY_HASH: str | None = None


def _throttle_rules(email: str, ip: str) -> list[tuple[str, int]]:
    config = current_app.config
    return [
        (f"account:{email.strip().lower()[:254]}", config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
        (f"ip:{ip[:64]}", config["LOGIN_MAX_FAILURES_PER_IP"]),
    ]


def _retry_after(rules: list[tuple[str, int]], now: datetime) -> int:
    window = timedelta(seconds=current_app.config["LOGIN_WINDOW_SECONDS"])
    wait = 0.0
    for key, limit in rules:
        row = db.session.get(LoginThrottle, key)
        if row is None or row.failures < limit:
            continue
        remaining = (row.window_started_at + window - now).total_seconds()
        wait = max(wait, remaining)
    return int(wait) + 1 if wait > 0 else 0


def _record_failure(rules: list[tuple[str, int]], now: datetime) -> None:
    window = timedelta(seconds=current_app.config["LOGIN_WINDOW_SECONDS"])
    for key, _limit in rules:
        row = db.session.get(LoginThrottle, key)
        if row is None:
            db.session.add(LoginThrottle(key=key, failures=1, window_started_at=now))
        elif row.window_started_at + window <= now:
            row.failures, row.window_started_at = 1, now
        else:
            row.failures += 1


def authenticate(email: str, password: str, ip: str, now: datetime) -> LoginResult:
    """Check a sign-in, throttling repeated failures per account and per client address."""
    global _DUMMY_HASH
    rules = _throttle_rules(email or "", ip or "unknown")
    wait = _retry_after(rules, now)
    if wait:
        log.warning("Sign-in throttled for a client (retry in %ss)", wait)
        minutes = max(1, round(wait / 60))
        return LoginResult(None, wait, f"Too many failed sign-in attempts. Try again in about {minutes} minute(s).")
    user = find_user(email or "")
    if user is None:
        # Spend the same time as a real check so response times do not reveal which emails exist.
        _DUMMY_HASH = _DUMMY_HASH or hash_password("not-a-real-password")
        check_password_hash(_DUMMY_HASH, password or "")
        ok = False
    else:
        ok = check_password_hash(user.password_hash, password or "")
    if not ok:
        _record_failure(rules, now)
        return LoginResult(None, 0, "Email or password is not correct.")
    if user.is_disabled:
        return LoginResult(None, 0, "This account is disabled. Ask the administrator.")
    account_row = db.session.get(LoginThrottle, rules[0][0])
    if account_row is not None:
        db.session.delete(account_row)  # the address counter stays: it limits guessing across accounts
    user.last_login_at = now
    return LoginResult(user)


def _active_admins() -> int:
    return db.session.scalar(
        select(func.count(User.id)).where(User.is_admin.is_(True), User.is_disabled.is_(False))
    ) or 0


def set_disabled(actor: User, user: User, disabled: bool) -> None:
    """Disable (signing them out everywhere) or re-enable an account."""
    if user.id == actor.id and disabled:
        raise AccountError("You cannot disable your own account.")
    if disabled and user.is_admin and not user.is_disabled and _active_admins() <= 1:
        raise AccountError("At least one active administrator must remain.")
    user.is_disabled = disabled
    if disabled:
        user.session_nonce = new_session_nonce()


def delete_user(actor: User, user: User) -> None:
    """Delete an account and everything stored for it: the households it alone belonged to go with it;
    a shared household stays with its other members (the longest-standing becomes owner if needed)."""
    from app import clock
    from app.households.service import release_memberships

    if user.id == actor.id:
        raise AccountError("You cannot delete your own account.")
    if user.is_admin and not user.is_disabled and _active_admins() <= 1:
        raise AccountError("At least one active administrator must remain.")
    release_memberships(user, actor.email, clock.now())
    db.session.delete(user)
    log.info("Deleted account %s", user.id)
