"""What features are built from: the `Feature` type (`feature`), the event context, commands in
comments, comments posted once, the conversation on a pull request, the steps a command takes to
become a run (`command_job`), help, Markdown, and local-checkout helpers.

A feature under `handlers/` imports from here, `bot.clients`, `bot.config` and the job system's
records, never from the server, the store, the pages or the operator commands; the kit is its
view of the bot's own records.
"""
