"""The bot's web pages: run pages and the operator's view."""
