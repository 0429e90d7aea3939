"""The server: webhooks in, handler calls out.

`app` accepts and stores deliveries, `intake` tells whether a payload has the shape the handlers
read, `worker` and `dispatch` turn stored deliveries into handler calls, `outbox` sends the side
effects that must happen exactly once, `runtime` builds the services and runs the background
loops, and `routing` composes the features' routers. Nothing here knows what a feature does.
"""
