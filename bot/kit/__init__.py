"""What features are built from: the event context, commands in comments, comments posted once,
the conversation on a pull request, help, Markdown, and local-checkout helpers.

A feature under `handlers/` imports from here and from `bot.clients`, never from the server, the
store or the job system's insides.
"""
