"""Operating the bot: the `bot` command line, `bot doctor` and `bot setup`."""
