"""Channels, I/O: POST a webhook, send an e-mail over SMTP; transient failures retried with exponential backoff
(tenacity). Secrets (`${VAR}`) are resolved here, at the moment of sending, and never logged: a webhook URL
carries its credential, so even a connection error's text (which repeats the URL) is not passed on."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from typing import TypeVar

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from foundation.core.settings import EmailChannel, NotificationsSettings, WebhookChannel
from foundation.engine.notifications.incidents import Transition
from foundation.engine.notifications.messages import json_payload, slack_payload, subject, text_body
from foundation.engine.notifications.routing import Delivery
from foundation.specs.secrets import resolve

T = TypeVar("T")


class ChannelError(Exception):
    """A failure that retrying will not fix (a 4xx answer, no recipient); its text holds no secret."""


class TransientHTTPError(OSError):
    """A 5xx or 429 answer: the receiver may be back in a moment."""


def with_retries(settings: NotificationsSettings, attempt: Callable[[], T], tries: int | None = None) -> T:
    """`attempt()` until it succeeds, at most `tries` (default `retry_attempts`) times, waiting 0.5 s, 1 s, 2 s...
    (at most `retry_max_wait_s`) between tries. Connection errors, timeouts, 5xx and SMTP errors are retried (all
    OSError); a ChannelError or an unset variable is not."""
    retrying = Retrying(
        stop=stop_after_attempt(tries or settings.retry_attempts),
        wait=wait_exponential(multiplier=0.5, max=settings.retry_max_wait_s),
        retry=retry_if_exception_type(OSError),
        reraise=True,
    )
    return retrying(attempt)


def post_webhook(
    name: str, channel: WebhookChannel, transition: Transition, environ: Mapping[str, str] | None = None
) -> None:
    url = resolve(channel.url, f"notifications.channels.{name}.url", environ)
    body = slack_payload(transition) if channel.format == "slack" else json_payload(transition)
    response = requests.post(url, json=body, timeout=channel.timeout_s)
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientHTTPError(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise ChannelError(f"the webhook answered HTTP {response.status_code}: {response.text[:200]}")


def email_message(channel: EmailChannel, recipients: tuple[str, ...], transition: Transition) -> EmailMessage:
    message = EmailMessage()
    message["From"] = channel.from_
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject(transition)
    message.set_content(text_body(transition))
    return message


def send_email(
    name: str,
    channel: EmailChannel,
    recipients: tuple[str, ...],
    transition: Transition,
    environ: Mapping[str, str] | None = None,
) -> None:
    if not recipients:
        raise ChannelError(
            f"no recipient: give notifications.channels.{name}.to, or an owner e-mail in the use case or source YAML"
        )
    where = f"notifications.channels.{name}"
    login = (
        (resolve(channel.user, f"{where}.user", environ), resolve(channel.password, f"{where}.password", environ))
        if channel.user and channel.password
        else None
    )
    with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout_s) as smtp:
        if channel.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if login is not None:
            smtp.login(*login)
        smtp.send_message(email_message(channel, recipients, transition))


def send(
    delivery: Delivery,
    transition: Transition,
    settings: NotificationsSettings,
    environ: Mapping[str, str] | None = None,
    tries: int | None = None,
) -> None:
    """Deliver one message on one channel, with retries; raises the last error when every try failed."""
    channel = delivery.channel
    if isinstance(channel, WebhookChannel):
        with_retries(settings, lambda: post_webhook(delivery.channel_name, channel, transition, environ), tries)
    else:
        name, recipients = delivery.channel_name, delivery.recipients
        with_retries(settings, lambda: send_email(name, channel, recipients, transition, environ), tries)


def describe_failure(exc: BaseException) -> str:
    """What a log line may say about a failed delivery: never a URL (it may hold the webhook's token)."""
    if isinstance(exc, ChannelError | TransientHTTPError | smtplib.SMTPException | KeyError):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "unreachable (connection failed)"
    return type(exc).__name__
