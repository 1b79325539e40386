"""Built-in ASGI applications for trying the server: ``hello``, ``asgi_echo``, ``alt_svc``.

Name them on the command line as ``trio_hface.server.examples.hello:app``.
"""
