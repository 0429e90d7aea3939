"""`@bot /help`: what every feature does on this repository, and who may use it."""

from handlers.help.handler import HELP, router

__all__ = ["HELP", "router"]
