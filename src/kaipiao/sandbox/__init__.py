"""The sandbox tax platform: a real HTTP server that misbehaves the way real platforms do."""
