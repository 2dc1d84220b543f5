"""A typed callback context, so handlers get `context.services` instead of dict look-ups."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application, CallbackContext, ExtBot

from bot.services import Services

SERVICES_KEY = "services"


class CloneContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """CallbackContext with the bot's services as a typed property."""

    @property
    def services(self) -> Services:
        services = self.application.bot_data.get(SERVICES_KEY)
        if not isinstance(services, Services):
            raise RuntimeError("services are not set up: post_init has not run")
        return services


def set_services(
    application: Application[Any, Any, Any, Any, Any, Any], services: Services
) -> None:
    """Store the services where CloneContext finds them."""
    application.bot_data[SERVICES_KEY] = services
