"""Live device sync (seed 002): what every open device of a person hears at once — new
inbox items, read and unread, keyed state — over SSE or WebSocket, with replay."""
